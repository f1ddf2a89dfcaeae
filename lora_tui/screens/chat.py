"""The Chat screen: stream from a base model or an adapter, or from two side by side.

One generation worker at a time runs on the screen (a mode screen, never
popped). It posts each text piece; the handlers write them to a MarkdownStream,
which batches pieces that arrive faster than the screen can render.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Label, Markdown, Select, Static, TextArea
from textual.widgets.markdown import MarkdownStream

from lora_tui.core.adapters.registry import adapter_base_path, get_adapter, list_adapters
from lora_tui.core.data.records import append_chat_example
from lora_tui.core.errors import UserError
from lora_tui.core.inference.generate import GenerationStats, Generator, Sampling, Turn
from lora_tui.core.models.store import discover_models
from lora_tui.core.threads import mlx_worker_thread
from lora_tui.gc_pauses import freeze_long_lived_objects
from lora_tui.screens.dialogs import Dialog, new_path
from lora_tui.widgets.app_footer import AppFooter
from lora_tui.widgets.area_bar import AreaBar
from lora_tui.widgets.model_picker import ModelPicker
from lora_tui.worker_errors import ReportsWorkerErrors

ADAPTER_PREFIX = "lora:"
SAMPLING_FIELDS = [  # (Sampling field, label, parser)
    ("temperature", "temperature", float),
    ("top_p", "top-p", float),
    ("top_k", "top-k", int),
    ("min_p", "min-p", float),
    ("repetition_penalty", "repeat penalty", float),
    ("max_tokens", "max tokens", int),
    ("seed", "seed", int),
]


class ChatModelPicker(ModelPicker):
    """Base models by path, and every adapter as lora/NAME."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.adapters: list = []

    @work(thread=True, exclusive=True, group="discover-models", exit_on_error=False)
    def discover(self) -> None:
        app = self.app
        models = discover_models(app.locations.models_dir, app.settings.extra_model_dirs())
        self.adapters = list_adapters(app.locations.adapters_dir)
        self.post_message(self.Found(self, models))

    def options_for(self, models: list) -> list[tuple[str, str]]:
        adapters = [(f"lora/{a.name}", ADAPTER_PREFIX + a.name) for a in self.adapters]
        return super().options_for(models) + adapters


@dataclass
class TextGenerated(Message):
    side: str
    text: str


@dataclass
class GenerationEnded(Message):
    side: str
    stats: GenerationStats | None
    error: str | None = None


@dataclass
class Target:
    """What one side of the chat talks to."""

    label: str
    base: Path
    adapter: Path | None


@dataclass
class Side:
    """One conversation pane: its history and the reply being streamed into it."""

    history: list[Turn] = field(default_factory=list)
    reply: str = ""
    stream: MarkdownStream | None = None  # while generating


@dataclass(frozen=True)
class SaveRequest:
    path: Path
    side: str


class SaveExampleDialog(Dialog):
    heading = "Save the last exchange as a training example (chat JSONL)"
    ok_label = "Append"

    def __init__(self, default: Path, compare: bool) -> None:
        super().__init__()
        self.default, self.compare = default, compare

    def fields(self) -> ComposeResult:
        yield self.row("append to", Input(str(self.default), id="example-path"))
        if self.compare:
            yield self.row("which side (a/b)", Input("b", id="example-side"))

    def request(self) -> SaveRequest:
        side = self.value("example-side").strip().lower() if self.compare else "a"
        if side not in ("a", "b"):
            raise UserError("Choose side a (left) or b (right).")
        return SaveRequest(new_path(self.value("example-path"), "file"), side)


class ChatScreen(ReportsWorkerErrors, Screen):
    AUTO_FOCUS = "#chat-input"
    BINDINGS = [
        Binding("escape", "stop", "Stop", id="chat-stop", tooltip="stop the reply; when idle, leave the message box"),
        Binding("ctrl+b", "compare", "Compare", id="chat-compare", tooltip="two models side by side"),
        Binding("ctrl+s", "save_example", "Save example", id="chat-save-example"),
        Binding("ctrl+n", "new_chat", "New chat", id="chat-new"),
        Binding("ctrl+o", "toggle_settings", "Settings", id="chat-settings"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sides = {"a": Side(), "b": Side()}
        self.compare = False
        self.generating = False
        self.stop_flag = threading.Event()
        self.generator = None  # core.generate.Generator, one base in memory at a time
        self.last_example_file: Path | None = None
        self.stats_lines: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield AreaBar("chat")
        with Horizontal(id="chat-models"):
            yield ChatModelPicker(id="chat-model-a", prompt="model or lora/adapter", compact=True)
            yield ChatModelPicker(id="chat-model-b", prompt="compare with", compact=True, preselect=False)
        yield Static("", id="chat-stats")
        with Horizontal(id="chat-body"):
            with Horizontal(id="chat-panes"):
                yield VerticalScroll(id="pane-a", classes="chat-pane")
                yield VerticalScroll(id="pane-b", classes="chat-pane")
            with VerticalScroll(id="chat-settings-panel"):
                yield Label("system prompt", classes="section-label")
                yield TextArea("", id="system-prompt", soft_wrap=True, show_line_numbers=False)
                defaults = Sampling()
                for name, label, _ in SAMPLING_FIELDS:
                    value = getattr(defaults, name)
                    yield Label(label, classes="section-label")
                    yield Input(
                        "" if value is None else str(value),
                        placeholder="off",
                        id=f"sampling-{name}",
                        compact=True,
                        classes="sampling-input",
                    )
        yield Input(placeholder="message (enter sends; esc stops a reply, or leaves this box)", id="chat-input")
        yield AppFooter()

    def on_mount(self) -> None:
        self.query_one("#chat-model-b").display = False
        self.query_one("#pane-b").display = False
        self.query_one("#chat-settings-panel").display = self.app.size.width >= 100

    def on_screen_resume(self) -> None:
        for picker in self.query(ChatModelPicker):
            picker.discover()

    def choose_adapter(self, name: str) -> None:
        self.query_one("#chat-model-a", ChatModelPicker).choose(ADAPTER_PREFIX + name)

    # Settings ------------------------------------------------------------------------

    def sampling(self) -> Sampling:
        values = {}
        for name, label, parse in SAMPLING_FIELDS:
            text = self.query_one(f"#sampling-{name}", Input).value.strip()
            if not text:
                if name != "seed":
                    raise UserError(f"Give a value for {label}.")
                continue
            try:
                values[name] = parse(text)
            except ValueError:
                raise UserError(f"{label} must be a {'whole ' if parse is int else ''}number, not {text!r}.") from None
        return Sampling(**values).check()

    def system_prompt(self) -> str | None:
        return self.query_one("#system-prompt", TextArea).text.strip() or None

    def target(self, picker_id: str) -> Target:
        value = self.query_one(picker_id, ChatModelPicker).value
        if value is Select.NULL:
            raise UserError("Choose a model (or an adapter) first.")
        if not str(value).startswith(ADAPTER_PREFIX):
            return Target(Path(value).name, Path(value), None)
        info = get_adapter(self.app.locations.adapters_dir, str(value).removeprefix(ADAPTER_PREFIX))
        base = adapter_base_path(info, self.app.locations.models_dir, self.app.settings.extra_model_dirs())
        return Target(f"lora/{info.name}", base, info.path)

    def action_toggle_settings(self) -> None:
        panel = self.query_one("#chat-settings-panel")
        panel.display = not panel.display

    # Sending ------------------------------------------------------------------------

    @on(Input.Submitted, "#chat-input")
    def send(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt:
            return
        if self.generating:
            self.notify("Still generating: esc stops it.", severity="warning")
            return
        try:
            sampling, system = self.sampling(), self.system_prompt()
            targets = {"a": self.target("#chat-model-a")}
            if self.compare:
                targets["b"] = self.target("#chat-model-b")
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        event.input.value = ""
        self.stats_lines.clear()
        self.stop_flag.clear()
        self.generating = True
        for side, target in targets.items():
            self.sides[side].history.append(Turn("user", prompt))
            self.start_reply(side, prompt, target.label)
        self.generate(targets, {side: list(self.sides[side].history) for side in targets}, sampling, system)

    def start_reply(self, side: str, prompt: str, label: str) -> None:
        pane = self.query_one(f"#pane-{side}", VerticalScroll)
        reply = Markdown("", classes="assistant-turn")
        pane.mount(Static(Text(prompt), classes="user-turn"))
        pane.mount(Label(label, classes="turn-label"))
        pane.mount(reply)
        pane.anchor()  # keep following the reply while the reader stays at the bottom
        self.sides[side].reply = ""
        self.sides[side].stream = Markdown.get_stream(reply)

    @work(thread=True, exclusive=True, group="chat-generate", exit_on_error=False)
    def generate(
        self, targets: dict[str, Target], histories: dict[str, list[Turn]], sampling: Sampling, system: str | None
    ) -> None:
        """One side after the other, each with the same sampling and seed."""
        with mlx_worker_thread():
            for side, target in targets.items():
                stats = GenerationStats()
                try:
                    generator = self.generator_for(target)
                    for piece in generator.stream(histories[side], sampling, system, stop=self.stop_flag, stats=stats):
                        self.post_message(TextGenerated(side, piece))
                except UserError as exc:
                    self.post_message(GenerationEnded(side, None, str(exc)))
                    continue
                except Exception as exc:  # a model that fails mid-generation: say so, keep the conversation
                    self.post_message(GenerationEnded(side, None, f"Generation failed: {type(exc).__name__}: {exc}"))
                    continue
                self.post_message(GenerationEnded(side, stats))
                if self.stop_flag.is_set():
                    break

    def generator_for(self, target: Target):
        if self.generator is None or self.generator.model_path != target.base:
            self.generator = None  # let the old base go before the new one loads
            try:
                self.generator = Generator(target.base)
            except UserError:
                raise
            except Exception as exc:  # weights or config mlx-lm cannot read
                raise UserError(f"{target.base}: the model failed to load ({type(exc).__name__}: {exc}).") from None
            freeze_long_lived_objects()  # the base stays loaded for the conversation
        self.generator.use_adapter(target.adapter)
        return self.generator

    @on(TextGenerated)
    async def show_text(self, message: TextGenerated) -> None:
        side = self.sides[message.side]
        side.reply += message.text
        await side.stream.write(message.text)

    @on(GenerationEnded)
    async def reply_ended(self, message: GenerationEnded) -> None:
        side = self.sides[message.side]
        if side.stream is not None:
            await side.stream.stop()
            side.stream = None
        if message.error is not None:
            side.history.pop()  # the question stays on screen; the next one is not sent twice
            pane = self.query_one(f"#pane-{message.side}", VerticalScroll)
            pane.mount(Static(Text(message.error), classes="turn-error"))
            self.notify(message.error, severity="error", timeout=10)
        else:
            side.history.append(Turn("assistant", side.reply))
            self.show_stats(message.side, message.stats)
        if all(s.stream is None for s in self.sides.values()):
            self.generating = False

    def show_stats(self, side: str, stats: GenerationStats) -> None:
        line = (
            f"{stats.generated_tokens} tokens, first after {stats.time_to_first_token * 1000:.0f} ms, "
            f"{stats.tokens_per_second:.1f} tok/s ({stats.finish_reason or 'stop'})"
        )
        self.stats_lines[side] = f"{side}: {line}" if self.compare else line
        self.query_one("#chat-stats", Static).update(
            Text("   ".join(self.stats_lines[s] for s in sorted(self.stats_lines)))
        )

    def action_stop(self) -> None:
        if self.generating:
            self.stop_flag.set()
        else:  # out of the message box, so the area keys (1-5) work again
            self.query_one("#pane-a").focus()

    # Modes and history --------------------------------------------------------------

    async def action_compare(self) -> None:
        if self.generating:
            self.notify("Stop the reply first (esc).", severity="warning")
            return
        self.compare = not self.compare
        self.query_one("#chat-model-b").display = self.compare
        self.query_one("#pane-b").display = self.compare
        await self.action_new_chat()

    async def action_new_chat(self) -> None:
        if self.generating:
            self.notify("Stop the reply first (esc).", severity="warning")
            return
        for name, side in self.sides.items():
            side.history.clear()
            await self.query_one(f"#pane-{name}", VerticalScroll).remove_children()
        self.query_one("#chat-stats", Static).update("")

    def action_save_example(self) -> None:
        if self.generating or not self.sides["a"].history:
            self.notify("Nothing to save yet: ask something first (and let it finish).", severity="warning")
            return
        default = self.last_example_file or Path(self.app.settings.datasets_root).expanduser() / "chat-examples.jsonl"
        self.app.push_screen(SaveExampleDialog(default, self.compare), self.save_example)

    def save_example(self, request: SaveRequest | None) -> None:
        if request is None:
            return
        history = self.sides[request.side].history
        system = self.system_prompt()
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": turn.role, "content": turn.content} for turn in history[-2:]
        ]
        try:
            line = append_chat_example(request.path, messages)
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        except OSError as exc:
            self.notify(f"{request.path}: could not write ({exc.strerror or exc}).", severity="error", timeout=10)
            return
        self.last_example_file = request.path
        self.notify(f"Saved as line {line} of {request.path}.")
