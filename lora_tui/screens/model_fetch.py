"""The dialog that imports a GGUF from Ollama or LM Studio, or downloads a model from the hub.

It only shows: the app runs the work (so a download goes on if the dialog closes) and sends
it progress. Esc stops an import after its current tensor; a download cannot stop half-way,
so Esc leaves it running and the app says when it is done.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, Static

from lora_tui.core.errors import UserError
from lora_tui.core.models.folders import HUB_ID
from lora_tui.core.models.gguf_stores import StoredGGUF
from lora_tui.core.names import validate_name
from lora_tui.core.units import human_bytes
from lora_tui.messages import ModelFetchStarted, ModelFetchStopRequested
from lora_tui.widgets.app_footer import AppFooter


class FetchModelDialog(ModalScreen):
    DEFAULT_CLASSES = "dialog-screen"
    BINDINGS = [Binding("escape", "close", "Close", id="close-dialog")]

    def __init__(self, stored: StoredGGUF | None) -> None:
        super().__init__()
        self.stored = stored
        self.running = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="fetch-dialog"):
            if self.stored:
                yield Label(f"Import {self.stored.name} as an MLX model", classes="dialog-title")
                yield Static(
                    Text(
                        f"{self.stored.architecture}, {self.stored.quantization}, {human_bytes(self.stored.size_bytes)}"
                    )
                )
                yield self.row("name", Input(self.stored.import_name, id="fetch-name"))
            else:
                yield Label("Download a model from the Hugging Face hub", classes="dialog-title")
                yield self.row(
                    "hub id", Input(placeholder="ORG/NAME, e.g. mlx-community/Qwen3-0.6B-4bit", id="fetch-repo")
                )
            yield ProgressBar(id="fetch-progress", show_eta=False)
            yield Static("", id="fetch-status")
            yield Static("", classes="dialog-problem")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Import" if self.stored else "Download", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")
        yield AppFooter()  # the dialog's own keys, not the screen's behind it

    def row(self, label: str, widget) -> Horizontal:
        return Horizontal(Label(label, classes="dialog-label"), widget, classes="dialog-row")

    def on_mount(self) -> None:
        self.query_one("#fetch-progress").display = False
        self.query_one(Input).focus()

    @on(Button.Pressed, "#ok")
    @on(Input.Submitted)
    def start(self) -> None:
        if self.running:
            return
        try:
            request = self.request()
        except UserError as exc:
            return self.show_problem(str(exc))
        self.running = True
        self.show_problem("")
        self.query_one("#ok", Button).disabled = True
        self.query_one("#fetch-progress").display = True
        self.query_one("#fetch-status", Static).update("Converting..." if self.stored else "Asking the hub...")
        self.app.post_message(request)

    def request(self) -> ModelFetchStarted:
        if self.stored:
            name = validate_name(self.query_one("#fetch-name", Input).value.strip(), "model name")
            return ModelFetchStarted(self.stored, name=name)
        repo = self.query_one("#fetch-repo", Input).value.strip()
        if not HUB_ID.match(repo):
            raise UserError("A hub id reads ORG/NAME, e.g. mlx-community/SmolLM2-135M-Instruct.")
        return ModelFetchStarted(None, repo=repo)

    def show_progress(self, done: int, total: int, started: float) -> None:
        self.query_one("#fetch-progress", ProgressBar).update(total=total or None, progress=done)
        speed = done / max(time.monotonic() - started, 1e-6)
        left = f", {(total - done) / speed:.0f} s left" if speed and total and done < total else ""
        verb = "Converting" if self.stored else "Downloading"
        line = f"{verb}: {human_bytes(done)} of {human_bytes(total)}, {human_bytes(speed)}/s{left}"
        self.query_one("#fetch-status", Static).update(line)

    def show_problem(self, text: str) -> None:
        self.query_one(".dialog-problem", Static).update(Text(text))

    def failed(self, error: str) -> None:
        self.running = False
        self.query_one("#ok", Button).disabled = False
        self.query_one("#fetch-progress").display = False
        self.query_one("#fetch-status", Static).update("")
        self.show_problem(error)

    @on(Button.Pressed, "#cancel")
    def action_close(self) -> None:
        if not self.running:
            self.dismiss(None)
        elif self.stored:
            self.app.post_message(ModelFetchStopRequested())
            self.query_one("#fetch-status", Static).update("Stopping after this tensor...")
        else:
            self.app.notify("The download goes on; you will be told when it is done.", timeout=5)
            self.dismiss(None)
