"""The Adapters screen: every adapter, sortable; its metadata, curves and checkpoints; the actions on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Checkbox, DataTable, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from lora_tui.core.adapters.convert import fuse_adapter
from lora_tui.core.adapters.exports import FORMATS, ExportRequest, default_out, export_adapter
from lora_tui.core.adapters.gguf_export import WRITTEN_TYPES, check_type
from lora_tui.core.adapters.layout import EVENTS, read_metadata
from lora_tui.core.adapters.registry import (
    AdapterInfo,
    adapter_base_path,
    delete_adapter,
    list_adapters,
    list_checkpoints,
    promote_checkpoint,
    rename_adapter,
)
from lora_tui.core.errors import UserError
from lora_tui.core.evaluation.report import describe_summary
from lora_tui.core.locations import Locations
from lora_tui.core.names import validate_name
from lora_tui.core.threads import mlx_worker_thread
from lora_tui.core.training.events import read_events
from lora_tui.core.training.job import TrainingJob
from lora_tui.core.training.setup import prepare_job
from lora_tui.core.training.sweeps import sweep_runs
from lora_tui.core.units import human_bytes
from lora_tui.messages import (
    AdapterChatRequested,
    AdapterTrainAgainRequested,
    ServingToggleRequested,
    TrainingRequested,
)
from lora_tui.screens.compare import CompareScreen
from lora_tui.screens.dialogs import ConfirmDialog, Dialog, TextDialog, new_path
from lora_tui.screens.evaluation import EvalScreen
from lora_tui.widgets.app_footer import AppFooter
from lora_tui.widgets.area_bar import AreaBar
from lora_tui.widgets.loss_chart import LossChart
from lora_tui.worker_errors import ReportsWorkerErrors

# (column title, AdapterInfo field, how to show it)
COLUMNS = [
    ("name", "name", str),
    ("status", "status", lambda v: v or "-"),  # "training" while a run holds the adapter; near the name at 80 columns
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
    last_evaluation: dict | None = None


@dataclass
class ActionProgress(Message):
    text: str


@dataclass
class ActionDone(Message):
    text: str
    failed: bool = False
    training: TrainingJob | None = None  # a resumed run, to hand to the app
    kept_for: str | None = None  # an adapter whose detail keeps showing `text` (an export's command)


@dataclass(frozen=True)
class AdapterAction:
    """Something done to one adapter, in a worker thread; `carry_out` says what happened."""

    adapter: AdapterInfo
    verb: ClassVar[str] = ""

    def carry_out(
        self, locations: Locations, extra_model_dirs: list[Path], report: Callable[[str], None]
    ) -> ActionDone:
        """Do it (in a worker thread); `report` shows a line of progress."""
        raise NotImplementedError


@dataclass(frozen=True)
class Rename(AdapterAction):
    new_name: str = ""
    verb: ClassVar[str] = "Rename"

    def carry_out(self, locations, extra_model_dirs, report) -> ActionDone:
        return ActionDone(
            f"Renamed to {rename_adapter(locations.adapters_dir, self.adapter.name, self.new_name).name}."
        )


@dataclass(frozen=True)
class Delete(AdapterAction):
    verb: ClassVar[str] = "Delete"

    def carry_out(self, locations, extra_model_dirs, report) -> ActionDone:
        delete_adapter(locations.adapters_dir, self.adapter.name)
        return ActionDone(f"Deleted {self.adapter.name}.")


@dataclass(frozen=True)
class Promote(AdapterAction):
    checkpoint: str = ""
    verb: ClassVar[str] = "Promote"

    def carry_out(self, locations, extra_model_dirs, report) -> ActionDone:
        chosen = promote_checkpoint(locations.adapters_dir, self.adapter.name, self.checkpoint)
        return ActionDone(f"{self.adapter.name} now has the weights of {chosen.name}.")


@dataclass(frozen=True)
class Fuse(AdapterAction):
    out: Path = Path()
    dequantize: bool = False
    verb: ClassVar[str] = "Fuse"

    def carry_out(self, locations, extra_model_dirs, report) -> ActionDone:
        base = adapter_base_path(self.adapter, locations.models_dir, extra_model_dirs)
        out = fuse_adapter(locations.adapters_dir, self.adapter.name, base, self.out, self.dequantize)
        return ActionDone(f"Fused into {out} (it is in `models list` when it is under the models folder).")


@dataclass(frozen=True)
class Export(AdapterAction):
    request: ExportRequest | None = None
    verb: ClassVar[str] = "Export"

    def carry_out(self, locations, extra_model_dirs, report) -> ActionDone:
        request = self.request or ExportRequest("gguf")
        if request.out is None:
            locations.exports_dir.mkdir(parents=True, exist_ok=True)
        exported = export_adapter(self.adapter, request, locations, extra_model_dirs, locations.exports_dir, log=report)
        return ActionDone(f"Exported to {exported.path}. Use it: {exported.how_to_use}", kept_for=self.adapter.name)


@dataclass(frozen=True)
class Resume(AdapterAction):
    verb: ClassVar[str] = "Resume"

    def carry_out(self, locations, extra_model_dirs, report) -> ActionDone:
        job, _ = prepare_job(locations, extra_model_dirs, self.adapter.name, None, None, resume=True)
        return ActionDone(f"Resuming {self.adapter.name}.", training=job)


class FuseDialog(Dialog):
    ok_label = "Fuse"

    def __init__(self, adapter: AdapterInfo, default_out: Path) -> None:
        super().__init__()
        self.heading = f"Fuse {adapter.name} into its base model (a new model folder)"
        self.adapter, self.default_out = adapter, default_out

    def fields(self) -> ComposeResult:
        yield self.row("into folder", Input(str(self.default_out), id="fuse-out"))
        yield self.row("", Checkbox("full precision (dequantize the base)", id="fuse-dequantize"))

    def request(self) -> Fuse:
        out = new_path(self.value("fuse-out"), "output folder")
        if out.exists():
            raise UserError(f"{out} already exists; choose another folder.")
        return Fuse(self.adapter, out, self.query_one("#fuse-dequantize", Checkbox).value)


class ExportDialog(Dialog):
    """Every export format with its options; a blank path means the format's usual place."""

    ok_label = "Export"

    def __init__(self, adapter: AdapterInfo) -> None:
        super().__init__()
        self.heading = f"Export {adapter.name}"
        self.adapter = adapter

    def fields(self) -> ComposeResult:
        yield self.row(
            "format",
            Select([(text, key) for key, text in FORMATS.items()], value="gguf", allow_blank=False, id="export-format"),
        )
        yield self.row("to", Input("", id="export-out"))
        yield self.row("GGUF type", Input("", placeholder=f"{', '.join(WRITTEN_TYPES[:4])}, ...", id="export-type"))
        yield self.row("", Checkbox("Ollama: base and adapter as two files", id="export-lora"))
        yield self.row(
            "base model id", Input("", placeholder="PEFT: e.g. HuggingFaceTB/SmolLM2-135M-Instruct", id="export-base")
        )

    def on_mount(self) -> None:
        self.show_default_place()

    @on(Select.Changed, "#export-format")
    @on(Input.Changed, "#export-type")
    def show_default_place(self) -> None:
        """The place a blank path means, named with the chosen format and type, in lora-tui's exports folder."""
        typed = self.value("export-type").strip().lower()
        request = ExportRequest(
            str(self.query_one("#export-format", Select).value), type_name=typed if _known_type(typed) else None
        )
        self.query_one("#export-out", Input).placeholder = str(
            default_out(self.adapter, request, self.app.locations.exports_dir)
        )

    def request(self) -> Export:
        text = self.value("export-out").strip()
        request = ExportRequest(
            format=str(self.query_one("#export-format", Select).value),
            out=new_path(text, "output path") if text else None,
            type_name=check_type(self.value("export-type").strip()) if self.value("export-type").strip() else None,
            as_lora=self.query_one("#export-lora", Checkbox).value,
            base_model_name=self.value("export-base").strip() or None,
        )
        out = request.out or default_out(self.adapter, request, self.app.locations.exports_dir)
        if out.exists():
            raise UserError(f"{out} already exists; choose another place.")
        return Export(self.adapter, request)


class CheckpointList(OptionList):
    BINDINGS = [Binding("p", "promote", "Promote", id="promote-checkpoint")]

    class PromoteRequested(Message):
        """Make the highlighted checkpoint the adapter's weights (asks first)."""

    def action_promote(self) -> None:
        self.post_message(self.PromoteRequested())


class AdaptersScreen(ReportsWorkerErrors, Screen):
    PURPOSE = """Every adapter with its metadata, loss curves and checkpoints: rename, delete,
    fuse, export, evaluate, compare, resume or train again, chat with one, or serve it to other apps."""
    AUTO_FOCUS = "#adapter-table"
    BINDINGS = [
        # Shown in the footer only where there is room (it fits 80 columns without these); ? lists them all.
        Binding(
            "s", "sort", "Sort", id="adapters-sort", tooltip="sort by the next column (again: reverse)", show=False
        ),
        Binding("n", "rename", "Rename", id="adapter-rename", show=False),
        Binding("d", "delete", "Delete", id="adapter-delete"),
        Binding("f", "fuse", "Fuse", id="adapter-fuse", show=False),
        Binding("e", "export", "Export", id="adapter-export"),
        Binding("c", "chat", "Chat", id="adapter-chat"),
        Binding("r", "resume", "Resume", id="adapter-resume", show=False),
        Binding(
            "t",
            "train_again",
            "Again",
            id="adapter-train-again",
            tooltip="train again with the same settings",
            show=False,
        ),
        Binding("v", "evaluate", "Eval", id="adapter-evaluate", tooltip="held-out loss and answers, against the base"),
        Binding("w", "serve", "Serve", id="adapter-serve", tooltip="serve its base and adapters as OpenAI's API"),
        Binding("space", "mark", "Mark", id="adapter-mark", tooltip="mark for comparing (again: unmark)"),
        Binding("p", "promote_highlighted", show=False),  # the checkpoint list's own p, said from anywhere
        Binding("m", "compare", "Compare", id="adapter-compare", tooltip="the marked adapters side by side"),
        Binding(
            "g", "compare_sweep", "Sweep", id="adapter-sweep", tooltip="the highlighted run's whole sweep", show=False
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.adapters: list = []
        self.sort_column = [title for title, _, _ in COLUMNS].index("created")
        self.sort_reverse = True
        self.shown_name: str | None = None
        self.wanted: str | None = None  # an adapter to select once the list is loaded
        self.marked: set[str] = set()  # adapters to compare
        self.last_exports: dict[str, str] = {}  # adapter name -> where its export went and how to use it

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
        yield Static(id="serve-status")
        yield AppFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for title, _, _ in COLUMNS:
            table.add_column(title, key=title)
        self.set_interval(1.0, self.show_serving)

    def on_screen_resume(self) -> None:
        self.load_adapters()
        self.show_serving()

    def show_serving(self) -> None:
        """The server's address and how many requests it has answered, while one runs."""
        if not self.is_mounted:
            return
        status = self.query_one("#serve-status", Static)
        service = self.app.service
        status.display = service is not None
        if service is not None:
            count = service.requests_served
            adapters = len(service.plan.adapters)
            status.update(
                f"Serving {service.plan.base_name} + {adapters} adapter{'s' * (adapters != 1)} at {service.url}"
                f" · {count} request{'s' * (count != 1)} · w stops it"
            )

    @work(thread=True, exclusive=True, group="adapters-list", exit_on_error=False)
    def load_adapters(self) -> None:
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
            cells = [show(getattr(info, name)) for _, name, show in COLUMNS]
            cells[0] = f"✓ {cells[0]}" if info.name in self.marked else cells[0]
            table.add_row(*cells, key=info.name)
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
        events_file = info.path / EVENTS
        events = read_events(events_file) if events_file.is_file() else []
        evaluation = read_metadata(info.path).get("last_evaluation") if info.usable else None
        self.post_message(DetailLoaded(info, events, list_checkpoints(info.path), evaluation))

    @on(DetailLoaded)
    def show_detail(self, message: DetailLoaded) -> None:
        if message.info.name != self.shown_name:
            return
        text = _metadata_text(message.info, message.last_evaluation)
        if message.info.name in self.last_exports:  # on screen to read and copy, not only in a toast
            text.append("\nlast export: ", style="bold")
            text.append(self.last_exports[message.info.name] + "\n")
        self.query_one("#adapter-meta", Static).update(text)
        chart = self.query_one(LossChart)
        chart.clear()
        for event in message.events:
            if event.type == "step":
                chart.add_train(event.step, event.train_loss, event.learning_rate)
            elif event.type == "validation":
                chart.add_valid(event.step, event.val_loss)
        checkpoints = self.query_one(CheckpointList)
        checkpoints.clear_options()
        checkpoints.add_options(
            [
                Option(f"{c.name}  val {c.val_loss:.4f}" if c.val_loss is not None else c.name, id=c.name)
                for c in message.checkpoints
            ]
            or [Option("none saved", disabled=True)]
        )

    # Actions ------------------------------------------------------------------------

    def action_rename(self) -> None:
        if (info := self.selected()) is None:
            return

        def renamed(text: str) -> Rename:
            if text == info.name:
                raise UserError("That is its name already.")
            name = validate_name(text, "new adapter name")
            if (self.app.locations.adapters_dir / name).exists():  # said in the dialog, which stays open
                raise UserError(f"An adapter named {name!r} exists already; choose another name.")
            return Rename(info, name)

        self.app.push_screen(
            TextDialog(f"Rename {info.name}", "new name", info.name, renamed, "Rename"), self.run_action
        )

    def action_delete(self) -> None:
        if (info := self.selected()) is None:
            return
        size = human_bytes(info.size_bytes)
        question = f"Delete the adapter {info.name} ({size}, with its checkpoints)? This cannot be undone."
        self.confirm(question, "Delete", Delete(info))

    def action_fuse(self) -> None:
        if (info := self.selected()) is not None:
            self.app.push_screen(
                FuseDialog(info, self.app.locations.models_dir / f"{info.name}-fused"), self.run_action
            )

    def action_export(self) -> None:
        if (info := self.selected()) is not None:
            self.app.push_screen(ExportDialog(info), self.run_action)

    def action_promote_highlighted(self) -> None:
        self.promote_highlighted()

    @on(CheckpointList.PromoteRequested)
    def promote_highlighted(self) -> None:
        info = self.selected()
        checkpoints = self.query_one(CheckpointList)
        option = (
            checkpoints.get_option_at_index(checkpoints.highlighted) if checkpoints.highlighted is not None else None
        )
        if info is None or option is None or option.id is None:
            self.notify("Highlight a checkpoint first (Tab to the checkpoints list).", severity="warning")
            return
        question = (
            f"Make {option.id} the weights of {info.name}? The current weights are replaced; the checkpoints stay."
        )
        self.confirm(question, "Promote", Promote(info, option.id))

    def action_chat(self) -> None:
        if (info := self.selected()) is not None:
            self.post_message(AdapterChatRequested(info.name))

    def action_resume(self) -> None:
        if (info := self.selected()) is not None:
            self.run_action(Resume(info))

    def action_mark(self) -> None:
        if (info := self.selected()) is not None:
            self.marked ^= {info.name}
            self.fill_table()

    def action_compare(self) -> None:
        chosen = [a for a in self.adapters if a.name in self.marked]
        if len(chosen) < 2:
            self.notify("Mark two or more adapters with space first.", severity="warning")
            return
        self.app.push_screen(CompareScreen(chosen))

    def action_compare_sweep(self) -> None:
        """Every run of the highlighted adapter's sweep, best first (as `lora-tui sweep show` ranks them)."""
        if (info := self.selected()) is None:
            return
        try:
            sweep = read_metadata(info.path).get("sweep")
            ranked = sweep_runs(self.app.locations.adapters_dir, sweep["name"]) if isinstance(sweep, dict) else []
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        by_name = {a.name: a for a in self.adapters}
        runs = [by_name[run.name] for run in ranked if run.name in by_name]
        if len(runs) < 2:
            self.notify(f"{info.name} is not a run of a sweep (train --sweep makes them).", severity="warning")
            return
        self.app.push_screen(CompareScreen(runs, title=f"Sweep {sweep['name']}, best first"))

    def action_evaluate(self) -> None:
        if (info := self.selected()) is not None:
            self.app.push_screen(EvalScreen(info), lambda _: self.load_adapters())

    def action_serve(self) -> None:
        if self.app.service is not None:  # stopping needs no adapter highlighted
            self.post_message(ServingToggleRequested())
        elif (info := self.selected()) is not None:
            self.post_message(ServingToggleRequested(info))

    def action_train_again(self) -> None:
        if (info := self.selected()) is not None:
            self.post_message(AdapterTrainAgainRequested(info))

    def confirm(self, question: str, ok_label: str, action: AdapterAction) -> None:
        self.app.push_screen(ConfirmDialog(question, ok_label), lambda yes: self.run_action(action if yes else None))

    def run_action(self, action: AdapterAction | None) -> None:
        """Carry out `action` in a worker; None (a dialog cancelled) does nothing."""
        if action is not None:
            self.notify(f"{action.verb}: {action.adapter.name} ...", timeout=3)
            self.action_job(action)

    @work(thread=True, group="adapter-actions", exit_on_error=False)
    def action_job(self, action: AdapterAction) -> None:
        with mlx_worker_thread():
            try:

                def report(text: str) -> None:
                    self.post_message(ActionProgress(f"{action.verb} {action.adapter.name}: {text}"))

                self.post_message(action.carry_out(self.app.locations, self.app.settings.extra_model_dirs(), report))
            except UserError as exc:
                self.post_message(ActionDone(str(exc), failed=True))
            except OSError as exc:
                self.post_message(ActionDone(f"{action.verb} failed: {exc}", failed=True))

    @on(ActionProgress)
    def action_progress(self, message: ActionProgress) -> None:
        self.notify(message.text, timeout=8)

    @on(ActionDone)
    def action_done(self, message: ActionDone) -> None:
        if message.kept_for is not None:
            self.last_exports[message.kept_for] = message.text
        long = message.failed or message.kept_for is not None
        self.notify(message.text, severity="error" if message.failed else "information", timeout=15 if long else 5)
        if message.training is not None:
            self.post_message(TrainingRequested(message.training))
        self.load_adapters()


def _known_type(type_name: str) -> bool:
    try:
        check_type(type_name)
    except UserError:
        return False
    return True


def _sort_key(value):
    """None sorts first; numbers and text each in their own order."""
    if value is None:
        return (0, 0, "")
    if isinstance(value, (int, float)):
        return (1, value, "")
    return (2, 0, str(value).lower())


def _metadata_text(info, last_evaluation: dict | None = None) -> Text:
    text = Text()
    text.append(f"{info.name}\n", style="bold")
    for key, value in info.to_json().items():
        if key == "name" or value is None:
            continue
        shown = human_bytes(value) if key == "size_bytes" else f"{value:.4g}" if isinstance(value, float) else value
        text.append(f"{key.removesuffix('_bytes').replace('_', ' ')}: ", style="bold")
        text.append(f"{shown}\n")
    if last_evaluation:
        text.append("\n".join(describe_summary(last_evaluation)) + "\n")
    return text
