"""The Adapters screen: every adapter, sortable; its metadata, curves and checkpoints; the actions on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Checkbox, DataTable, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from lora_tui.core.errors import UserError
from lora_tui.core.threads import mlx_worker_thread
from lora_tui.core.units import human_bytes
from lora_tui.screens.dialogs import ConfirmDialog, Dialog, TextDialog, new_path
from lora_tui.worker_errors import ReportsWorkerErrors
from lora_tui.widgets.app_footer import AppFooter
from lora_tui.widgets.area_bar import AreaBar
from lora_tui.widgets.loss_chart import LossChart

# (column title, AdapterInfo field, how to show it)
COLUMNS = [
    ("name", "name", str),
    ("base", "base_model", lambda v: Path(v).name if v else "-"),
    ("dataset", "dataset", lambda v: Path(v).name if v else "-"),
    ("created", "created", lambda v: v[:16].replace("T", " ") if v else "-"),
    ("loss", "final_train_loss", lambda v: f"{v:.4f}" if v is not None else "-"),
    ("val", "best_val_loss", lambda v: f"{v:.4f}" if v is not None else "-"),
    ("rank", "rank", lambda v: str(v) if v is not None else "-"),
    ("epochs", "epochs", lambda v: f"{v:g}" if v is not None else "-"),
    ("steps", "steps", lambda v: str(v) if v is not None else "-"),
    ("lr", "learning_rate", lambda v: f"{v:.0e}" if v is not None else "-"),
    ("size", "size_bytes", human_bytes),
]


@dataclass
class AdaptersFound(Message):
    adapters: list  # core.adapters.AdapterInfo


@dataclass
class DetailLoaded(Message):
    info: object
    events: list
    checkpoints: list


@dataclass
class ActionDone(Message):
    text: str
    failed: bool = False


@dataclass(frozen=True)
class FuseRequest:
    out: Path
    dequantize: bool


class FuseDialog(Dialog):
    ok_label = "Fuse"

    def __init__(self, name: str, default_out: Path) -> None:
        super().__init__()
        self.heading = f"Fuse {name} into its base model (a new model folder)"
        self.default_out = default_out

    def fields(self) -> ComposeResult:
        yield self.row("into folder", Input(str(self.default_out), id="fuse-out"))
        yield self.row("", Checkbox("full precision (dequantize the base)", id="fuse-dequantize"))

    def request(self) -> FuseRequest:
        out = new_path(self.value("fuse-out"), "output folder")
        if out.exists():
            raise UserError(f"{out} already exists; choose another folder.")
        return FuseRequest(out, self.query_one("#fuse-dequantize", Checkbox).value)


@dataclass(frozen=True)
class ExportRequest:
    out: Path
    base_model_name: str | None


class ExportDialog(Dialog):
    ok_label = "Export"

    def __init__(self, name: str, default_out: Path, base_model: str | None) -> None:
        super().__init__()
        self.heading = f"Export {name} for PEFT (Hugging Face)"
        self.default_out, self.base_model = default_out, base_model

    def fields(self) -> ComposeResult:
        yield self.row("into folder", Input(str(self.default_out), id="export-out"))
        yield self.row("base model id", Input(self.base_model or "", placeholder="e.g. HuggingFaceTB/SmolLM2-135M-Instruct",
                                              id="export-base"))

    def request(self) -> ExportRequest:
        out = new_path(self.value("export-out"), "output folder")
        if out.exists():
            raise UserError(f"{out} already exists; choose another folder.")
        return ExportRequest(out, self.value("export-base").strip() or None)


class CheckpointList(OptionList):
    BINDINGS = [Binding("p", "promote", "Promote", id="promote-checkpoint")]

    def action_promote(self) -> None:
        self.screen.promote_highlighted()


class AdaptersScreen(ReportsWorkerErrors, Screen):
    AUTO_FOCUS = "#adapter-table"
    BINDINGS = [
        Binding("s", "sort", "Sort", id="adapters-sort", tooltip="sort by the next column (again: reverse)"),
        Binding("n", "rename", "Rename", id="adapter-rename"),
        Binding("d", "delete", "Delete", id="adapter-delete"),
        Binding("f", "fuse", "Fuse", id="adapter-fuse"),
        Binding("e", "export", "Export", id="adapter-export"),
        Binding("c", "chat", "Chat", id="adapter-chat"),
        Binding("r", "resume", "Resume", id="adapter-resume"),
        Binding("t", "train_again", "Again", id="adapter-train-again", tooltip="train again with the same settings"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.adapters: list = []
        self.sort_column = 3  # created
        self.sort_reverse = True
        self.shown_name: str | None = None
        self.wanted: str | None = None  # an adapter to select once the list is loaded

    def compose(self) -> ComposeResult:
        yield AreaBar("adapters")
        yield DataTable(id="adapter-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="adapter-detail"):
            with VerticalScroll(id="adapter-meta-scroll"):
                yield Static("No adapters yet: train one from Train (2).", id="adapter-meta")
            yield LossChart(id="adapter-chart")
            with Vertical(id="adapter-checkpoints"):
                yield Label("checkpoints (p: promote)", classes="section-label")
                yield CheckpointList(id="checkpoint-list")
        yield AppFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for title, _, _ in COLUMNS:
            table.add_column(title, key=title)

    def on_screen_resume(self) -> None:
        self.load_adapters()

    @work(thread=True, exclusive=True, group="adapters-list", exit_on_error=False)
    def load_adapters(self) -> None:
        from lora_tui.core.adapters.registry import list_adapters

        self.post_message(AdaptersFound(list_adapters(self.app.locations.adapters_dir)))

    @on(AdaptersFound)
    def show_adapters(self, message: AdaptersFound) -> None:
        self.adapters = message.adapters
        self.fill_table()

    def select_adapter(self, name: str) -> None:
        self.wanted = name
        self.fill_table()

    def fill_table(self) -> None:
        table = self.query_one(DataTable)
        keep = self.wanted or self.selected_name()
        table.clear()
        _, field, _ = COLUMNS[self.sort_column]
        ordered = sorted(self.adapters, key=lambda a: _sort_key(getattr(a, field)), reverse=self.sort_reverse)
        for info in ordered:
            table.add_row(*(show(getattr(info, name)) for _, name, show in COLUMNS), key=info.name)
        arrow = "▼" if self.sort_reverse else "▲"
        for index, (title, _, _) in enumerate(COLUMNS):
            table.columns[title].label = Text(f"{title} {arrow}" if index == self.sort_column else title)
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep))
            self.wanted = None
        if not ordered:
            self.shown_name = None
            self.query_one("#adapter-meta", Static).update("No adapters yet: train one from Train (2).")
            self.query_one(LossChart).clear()
            self.query_one(CheckpointList).clear_options()

    def selected_name(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def selected(self):
        name = self.selected_name()
        info = next((a for a in self.adapters if a.name == name), None)
        if info is None:
            self.notify("No adapter selected.", severity="warning")
        return info

    def action_sort(self) -> None:
        if self.sort_reverse:
            self.sort_reverse = False
        else:
            self.sort_column = (self.sort_column + 1) % len(COLUMNS)
            self.sort_reverse = True
        self.fill_table()

    # Detail -------------------------------------------------------------------------

    @on(DataTable.RowHighlighted)
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        info = next((a for a in self.adapters if a.name == event.row_key.value), None)
        if info is not None:
            self.shown_name = info.name
            self.load_detail(info)

    @work(thread=True, exclusive=True, group="adapter-detail", exit_on_error=False)
    def load_detail(self, info) -> None:
        from lora_tui.core.adapters.layout import EVENTS
        from lora_tui.core.adapters.registry import list_checkpoints
        from lora_tui.core.training.events import read_events

        events_file = info.path / EVENTS
        events = read_events(events_file) if events_file.is_file() else []
        self.post_message(DetailLoaded(info, events, list_checkpoints(info.path)))

    @on(DetailLoaded)
    def show_detail(self, message: DetailLoaded) -> None:
        if message.info.name != self.shown_name:
            return
        self.query_one("#adapter-meta", Static).update(_metadata_text(message.info))
        chart = self.query_one(LossChart)
        chart.clear()
        for event in message.events:
            if event.type == "step":
                chart.add_train(event.step, event.train_loss, event.learning_rate)
            elif event.type == "validation":
                chart.add_valid(event.step, event.val_loss)
        checkpoints = self.query_one(CheckpointList)
        checkpoints.clear_options()
        checkpoints.add_options([
            Option(f"{c.name}  val {c.val_loss:.4f}" if c.val_loss is not None else c.name, id=c.name)
            for c in message.checkpoints
        ] or [Option("none saved", disabled=True)])

    # Actions ------------------------------------------------------------------------

    def action_rename(self) -> None:
        if (info := self.selected()) is None:
            return
        from lora_tui.core.names import validate_name

        def check(text: str) -> str:
            if text == info.name:
                raise UserError("That is its name already.")
            return validate_name(text, "new adapter name")

        self.app.push_screen(TextDialog(f"Rename {info.name}", "new name", info.name, check, "Rename"),
                             self.when_answered("rename", info))

    def action_delete(self) -> None:
        if (info := self.selected()) is None:
            return
        question = f"Delete the adapter {info.name} ({human_bytes(info.size_bytes)}, with its checkpoints)? This cannot be undone."
        self.app.push_screen(ConfirmDialog(question, "Delete"), self.when_answered("delete", info))

    def action_fuse(self) -> None:
        if (info := self.selected()) is None:
            return
        default = self.app.locations.models_dir / f"{info.name}-fused"
        self.app.push_screen(FuseDialog(info.name, default), self.when_answered("fuse", info))

    def action_export(self) -> None:
        if (info := self.selected()) is None:
            return
        default = Path.home() / f"{info.name}-peft"
        self.app.push_screen(ExportDialog(info.name, default, None), self.when_answered("export", info))

    def promote_highlighted(self) -> None:
        info = self.selected()
        checkpoints = self.query_one(CheckpointList)
        if info is None or checkpoints.highlighted is None:
            return
        option = checkpoints.get_option_at_index(checkpoints.highlighted)
        if option.id is None:
            return
        question = f"Make {option.id} the weights of {info.name}? The current weights are replaced; the checkpoints stay."
        self.app.push_screen(ConfirmDialog(question, "Promote"), self.when_answered("promote", info, option.id))

    async def action_chat(self) -> None:
        if (info := self.selected()) is not None:
            await self.app.open_chat(info.name)

    def action_resume(self) -> None:
        if (info := self.selected()) is not None:
            self.run_action_job("resume", info)

    async def action_train_again(self) -> None:
        if (info := self.selected()) is not None:
            await self.app.train_again(info)

    def when_answered(self, kind: str, info, argument=None):
        """A dialog callback that runs the job when the answer is not None (cancelled) or False."""

        def run_if_answered(answer) -> None:
            if answer:
                self.run_action_job(kind, info, argument if argument is not None else answer)

        return run_if_answered

    def run_action_job(self, kind: str, info, argument=None) -> None:
        self.notify(f"{kind.title()}: {info.name} ...", timeout=3)
        self.action_job(kind, info, argument)

    @work(thread=True, group="adapter-actions", exit_on_error=False)
    def action_job(self, kind: str, info, argument) -> None:
        with mlx_worker_thread():
            try:
                self.post_message(ActionDone(self.carry_out(kind, info, argument)))
            except UserError as exc:
                self.post_message(ActionDone(str(exc), failed=True))
            except OSError as exc:
                self.post_message(ActionDone(f"{kind} failed: {exc}", failed=True))

    def carry_out(self, kind: str, info, argument) -> str:
        from lora_tui.core.adapters import registry

        folder = self.app.locations.adapters_dir
        if kind == "rename":
            return f"Renamed to {registry.rename_adapter(folder, info.name, argument).name}."
        if kind == "delete":
            registry.delete_adapter(folder, info.name)
            return f"Deleted {info.name}."
        if kind == "promote":
            chosen = registry.promote_checkpoint(folder, info.name, argument)
            return f"{info.name} now has the weights of {chosen.name}."
        if kind == "fuse":
            base = registry.adapter_base_path(info, self.app.locations.models_dir, self.app.settings.extra_model_dirs())
            out = registry.fuse_adapter(folder, info.name, base, argument.out, argument.dequantize)
            return f"Fused into {out} (it is in `models list` when it is under the models folder)."
        if kind == "export":
            return f"Exported to {registry.export_peft(folder, info.name, argument.out, argument.base_model_name)}."
        assert kind == "resume"
        from lora_tui.core.training.setup import prepare_job
        from lora_tui.messages import TrainingRequested

        job, _ = prepare_job(self.app.locations, self.app.settings.extra_model_dirs(), info.name, None, None, resume=True)
        self.app.post_message(TrainingRequested(job))
        return f"Resuming {info.name}."

    @on(ActionDone)
    def action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity="error" if message.failed else "information", timeout=10 if message.failed else 5)
        self.load_adapters()


def _sort_key(value):
    """None sorts first; numbers and text each in their own order."""
    if value is None:
        return (0, 0, "")
    if isinstance(value, (int, float)):
        return (1, value, "")
    return (2, 0, str(value).lower())


def _metadata_text(info) -> Text:
    text = Text()
    text.append(f"{info.name}\n", style="bold")
    for key, value in info.to_json().items():
        if key == "name" or value is None:
            continue
        shown = human_bytes(value) if key == "size_bytes" else f"{value:.4g}" if isinstance(value, float) else value
        text.append(f"{key.removesuffix('_bytes').replace('_', ' ')}: ", style="bold")
        text.append(f"{shown}\n")
    return text
