"""The Train screen: a form generated from the parameter table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Input, Label, Select, Static

from lora_tui.core.adapters.layout import read_metadata
from lora_tui.core.adapters.lock import holder
from lora_tui.core.adapters.registry import AdapterInfo
from lora_tui.core.data.check import read_dataset_report
from lora_tui.core.data.columns import SavedColumns, format_columns, parse_columns
from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_write_text
from lora_tui.core.names import validate_name
from lora_tui.core.threads import mlx_worker_thread
from lora_tui.core.training.adapted import model_projections, short_names
from lora_tui.core.training.estimate import estimate_run
from lora_tui.core.training.fit import DoesNotFit
from lora_tui.core.training.job import TrainingJob
from lora_tui.core.training.launch import check_hosts, read_hostfile
from lora_tui.core.training.params import PARAMS, PRESETS, Param, build_params
from lora_tui.core.training.queue import PlannedRun, queue_runs
from lora_tui.core.training.ranks import check_batch_split
from lora_tui.core.training.setup import prepare_job
from lora_tui.core.training.sweeps import NOT_SWEPT, expand_grid, parse_sweep
from lora_tui.core.units import counted
from lora_tui.messages import TrainingRequested
from lora_tui.screens.dialogs import FitDialog
from lora_tui.widgets.app_footer import AppFooter
from lora_tui.widgets.area_bar import AreaBar
from lora_tui.widgets.model_picker import ModelPicker
from lora_tui.worker_errors import ReportsWorkerErrors


def shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _free_name(name: str, adapters_dir: Path) -> str:
    """`name` if no adapter has it, else the first free NAME-2, NAME-3, ..."""
    if not (adapters_dir / name).exists():
        return name
    base = name.rsplit("-", 1)[0] if name.rsplit("-", 1)[-1].isdigit() else name
    number = 2
    while (adapters_dir / f"{base}-{number}").exists():
        number += 1
    return f"{base}-{number}"


class ParamField(Horizontal):
    """One parameter: its input, range and help; marked when the value is invalid."""

    def __init__(self, param: Param) -> None:
        super().__init__(classes="param-field", id=f"field-{param.name}")
        self.param = param
        self.error: str | None = None
        self.available: list[str] | None = None  # target modules: the projections the chosen model has

    def compose(self) -> ComposeResult:
        yield Label(self.param.label, classes="param-name")
        placeholder = "auto" if self.param.optional else ""
        yield Input(
            shown(self.param.default),
            placeholder=placeholder,
            id=f"param-{self.param.name}",
            classes="param-input",
            compact=True,
        )
        help_text = f"[{self.param.range_text}] {self.param.help}"
        yield Static(help_text, classes="param-help", markup=False).with_tooltip(help_text)

    def text(self) -> str:
        return self.query_one(Input).value.strip()

    def swept(self) -> bool:
        """Several values (a sweep: "1e-4,3e-4"; a list parameter's values split by ";")."""
        if self.param.name in NOT_SWEPT:  # a column mapping's commas are its own
            return False
        return (";" if self.param.kind is list else ",") in self.text()

    def axis(self):
        return parse_sweep(f"{self.param.name}={self.text()}")

    def value(self):
        if self.swept():
            raise UserError(f"{self.param.label} holds several values (a sweep): add the sweep to the queue.")
        text = self.text()
        return self.param.parse(text if text or not self.param.optional else None)

    def validate_now(self) -> bool:
        try:
            value = self.axis() if self.swept() else self.value()
            self.check_available(value)
            self.error = None
        except UserError as exc:
            self.error = str(exc)
        self.set_class(self.error is not None, "-invalid")
        self.query_one(".param-help", Static).update(self.error or self.help_text())
        return self.error is None

    def help_text(self) -> str:
        has = f" This model has: {', '.join(self.available)}." if self.available else ""
        return f"[{self.param.range_text}] {self.param.help}{has}"

    def check_available(self, value) -> None:
        if not self.available or not isinstance(value, list):
            return
        missing = [name for name in value if name not in self.available]
        if missing:
            raise UserError(f"This model has no {', '.join(missing)}; it has {', '.join(self.available)}.")


@dataclass
class StartChecked(Message):
    job: object | None
    problem: str | None
    estimate_only: bool = False
    hostfile: Path | None = None
    fixes: tuple = ()  # a run that would not fit: the changes that make it fit (fit.Fix)


@dataclass
class DatasetVerdict(Message):
    """The dataset box's text, checked off the UI thread: None when it is ready to train on, else why not."""

    text: str
    problem: str | None


CHECKING = "checking the dataset ..."


def dataset_key(path_text: str, columns: str) -> str:
    """What a dataset verdict is for: the path as typed, read through the columns as typed."""
    return f"{path_text}\n{columns}"


@dataclass
class Queued(Message):
    text: str
    failed: bool = False
    fixes: tuple = ()  # a run that would not fit: the changes that make it fit (fit.Fix)


@dataclass
class EstimateMeasured(Message):
    text: str
    failed: bool = False


VALIDATION_CHOICES = [
    ("a folder's valid.jsonl; none for a file", ""),
    ("hold out 5% of the file", "0.05"),
    ("hold out 10% of the file", "0.1"),
    ("hold out 20% of the file", "0.2"),
]


class TrainScreen(ReportsWorkerErrors, Screen):
    PURPOSE = """Set up a run: the model, the dataset, the adapter's name and the training parameters,
    each checked against its documented range as you type. Start it (it runs on the Dashboard), measure a few
    real steps first, or save the settings as a config file."""
    BINDINGS = [
        Binding("ctrl+s", "start", "Start", id="start-training"),
        Binding(
            "ctrl+e",
            "estimate",
            "Estimate",
            id="estimate-run",
            tooltip="time per epoch and peak memory, measured from a few real steps",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.dataset_verdicts: dict[str, str | None] = {}  # dataset box text -> problem (None: ready)
        self.start_when_checked: bool | None = None  # Start (False) or Estimate (True) waits for the check
        self.filled_name: str | None = None  # the adapter name `t` from Datasets filled in last

    def compose(self) -> ComposeResult:
        yield AreaBar("train")
        with VerticalScroll(id="train-form"):
            with Horizontal(classes="picker"):
                yield Label("model", classes="param-name")
                yield ModelPicker(id="pick-model", compact=True)
            with Horizontal(classes="picker"):
                yield Label("or hub id", classes="param-name")
                yield Input(
                    placeholder="e.g. mlx-community/SmolLM2-135M-Instruct (downloaded on Start)",
                    id="pick-hub",
                    compact=True,
                )
            with Horizontal(classes="picker"):
                yield Label("dataset", classes="param-name")
                yield Input(
                    placeholder="a .jsonl file, or a folder with train.jsonl (and valid.jsonl)",
                    id="pick-data",
                    compact=True,
                )
            with Horizontal(classes="picker"):
                yield Label("validation", classes="param-name")
                yield Select(VALIDATION_CHOICES, value="", allow_blank=False, id="pick-valid", compact=True)
            with Horizontal(classes="picker"):
                yield Label("hosts", classes="param-name")
                yield Input(
                    placeholder="optional: an mlx.launch hostfile to train on several machines",
                    id="pick-hosts",
                    compact=True,
                )
            with Horizontal(classes="picker"):
                yield Label("adapter name", classes="param-name")
                yield Input(placeholder="letters, digits, _ - and spaces", id="pick-name", compact=True)
            with Horizontal(id="presets"):
                yield Label("preset", classes="param-name")
                for preset in PRESETS:
                    yield Button(preset, id=f"preset-{preset}", compact=True, tooltip=PRESETS[preset].purpose)
                yield Input(placeholder="config file to save, e.g. run.toml", id="config-path", compact=True)
                yield Button("save config", id="save-config", compact=True, tooltip="the parameters as a TOML file")
            for param in PARAMS:
                yield ParamField(param)
        with Vertical(id="train-bottom"):
            yield Static("", id="field-help", markup=False)
            with Horizontal(id="train-actions"):
                yield Static("", id="form-status")
                yield Button("Estimate", id="estimate", disabled=True)
                yield Button("Queue", id="queue-run", disabled=True, tooltip="add the run (or its sweep) to the queue")
                yield Button("Start training", variant="primary", id="start", disabled=True)
        yield AppFooter()

    def on_descendant_focus(self, event) -> None:
        """Below the form: the focused parameter's name, range and whole help (its row cuts them at 80 columns)."""
        field = next((a for a in event.widget.ancestors_with_self if isinstance(a, ParamField)), None)
        text = f"{field.param.label}: [{field.param.range_text}] {field.param.help}" if field is not None else ""
        self.query_one("#field-help", Static).update(text)
        self.query_one("#field-help", Static).display = bool(text)

    def on_screen_resume(self) -> None:
        """Coming back to the form, the keys are the screen's: nothing typed lands in the box left last."""
        if isinstance(self.focused, Input):
            self.set_focus(None)

    def use_dataset(self, path: Path) -> None:
        """The dataset sent from Datasets; the adapter name too, unless the user typed one of their own."""
        self.query_one("#pick-data", Input).value = str(path)
        saved = SavedColumns(self.app.locations.column_maps_file).get(path)
        self.query_one("#param-columns", Input).value = format_columns(saved)
        name_box = self.query_one("#pick-name", Input)
        if not name_box.value.strip() or name_box.value == self.filled_name:
            name_box.value = self.filled_name = _free_name(path.stem, self.app.locations.adapters_dir)

    def fill_from_adapter(self, adapter: AdapterInfo) -> None:
        """Model, dataset and every parameter of an earlier run; a free name derived from its own."""
        try:
            job = TrainingJob.load(adapter.path)
        except UserError:
            job = None
        parameters = job.params.to_json() if job else read_metadata(adapter.path).get("parameters", {})
        model = str(job.model_path) if job else adapter.base_model_path
        if model:
            self.query_one(ModelPicker).choose(model)
        self.query_one("#pick-data", Input).value = str(job.data) if job else adapter.dataset or ""
        self.query_one("#pick-name", Input).value = _free_name(adapter.name, self.app.locations.adapters_dir)
        for field in self.fields():
            if field.param.name in parameters:
                field.query_one(Input).value = shown(parameters[field.param.name])
        self.notify(
            f"The form has {adapter.name}'s settings; "
            f"Start (ctrl+s) trains {self.query_one('#pick-name', Input).value}."
        )

    def fields(self) -> list[ParamField]:
        return list(self.query(ParamField))

    def parameters(self):
        return build_params({f.param.name: f.value() for f in self.fields()})

    @on(Input.Changed)
    @on(Select.Changed)
    def changed(self, event) -> None:
        field = next((a for a in event.control.ancestors if isinstance(a, ParamField)), None)
        if field is not None:
            field.validate_now()
        if event.control.id in ("pick-data", "param-columns"):
            self.check_dataset_box(self.dataset_text(), self.columns_text())
        if event.control.id == "pick-model":
            self.show_model_projections()
        self.refresh_start()

    def show_model_projections(self) -> None:
        """The target-module field offers what the chosen model has (a Phi-3: qkv, o, gate_up, down)."""
        value = self.query_one("#pick-model", Select).value
        folder = Path(str(value)) if value is not Select.NULL else None
        field = self.query_one("#field-target_modules", ParamField)
        field.available = short_names(model_projections(folder)) or None if folder and folder.is_dir() else None
        field.validate_now()

    @work(thread=True, exclusive=True, group="train-data-check", exit_on_error=False)
    def check_dataset_box(self, text: str, columns: str) -> None:
        """Every line of the dataset, as `data check` reads it: a missing file or one with errors shows before Start."""
        if not text:
            return
        key = dataset_key(text, columns)
        try:
            mapping = parse_columns(None if columns.lower() == "auto" else columns)
            report = read_dataset_report(Path(text).expanduser(), columns=mapping)
        except UserError as exc:
            self.post_message(DatasetVerdict(key, str(exc)))
            return
        self.post_message(DatasetVerdict(key, None if report.ok else report.first_error()))

    @on(DatasetVerdict)
    def dataset_checked(self, message: DatasetVerdict) -> None:
        self.dataset_verdicts[message.text] = message.problem
        self.refresh_start()
        waiting, self.start_when_checked = self.start_when_checked, None
        if waiting is not None and message.text == dataset_key(self.dataset_text(), self.columns_text()):
            self.check_form_then(estimate_only=waiting)

    def dataset_text(self) -> str:
        return self.query_one("#pick-data", Input).value.strip()

    def columns_text(self) -> str:
        return self.query_one("#param-columns", Input).value.strip()

    def dataset_problem(self) -> str | None:
        text = self.dataset_text()
        if not text:
            return "give a dataset"
        verdict = self.dataset_verdicts.get(dataset_key(text, self.columns_text()), CHECKING)
        return f"dataset: {verdict}" if verdict and verdict != CHECKING else verdict

    def form_problem(self) -> str | None:
        invalid = [f for f in self.fields() if not f.validate_now()]
        if invalid:
            return f"{counted(len(invalid), 'invalid field')}: {invalid[0].error}"
        if self.query_one("#pick-model", Select).value is Select.NULL and not self.hub_id():
            return "choose a model"
        if (problem := self.dataset_problem()) is not None:
            return problem
        if not self.query_one("#pick-name", Input).value.strip():
            return "name the adapter"
        return self.name_problem() or self.hosts_problem()

    def name_problem(self) -> str | None:
        try:
            name = validate_name(self.query_one("#pick-name", Input).value, "adapter name")
        except UserError as exc:
            return str(exc)
        busy = holder(self.app.locations.adapters_dir, name)
        if busy is not None:
            return busy.sentence(name)
        if (self.app.locations.adapters_dir / name).exists():
            return f"an adapter named {name!r} exists: choose another name (or resume it from Adapters)"
        return None

    def hostfile(self) -> Path | None:
        text = self.query_one("#pick-hosts", Input).value.strip()
        return Path(text).expanduser() if text else None

    def hosts_problem(self) -> str | None:
        """The hostfile checked as it is typed (reachability is checked on Start)."""
        hostfile = self.hostfile()
        if hostfile is None:
            return None
        try:
            check_batch_split(int(self.query_one("#param-batch_size", Input).value), len(read_hostfile(hostfile)))
        except (UserError, ValueError) as exc:
            return f"hosts: {exc}"
        return None

    def hub_id(self) -> str:
        return self.query_one("#pick-hub", Input).value.strip()

    def refresh_start(self) -> None:
        problem = self.form_problem()
        swept = any(field.swept() for field in self.fields())
        self.query_one("#start", Button).disabled = problem is not None or swept
        self.query_one("#estimate", Button).disabled = problem is not None or swept
        self.query_one("#queue-run", Button).disabled = problem is not None
        self.query_one("#form-status", Static).update(problem or "ready")

    @on(Button.Pressed, "#presets Button")
    def apply_preset(self, event: Button.Pressed) -> None:
        if event.button.id == "save-config":
            self.save_config()
            return
        for name, value in PRESETS[event.button.id.removeprefix("preset-")].values.items():
            self.query_one(f"#param-{name}", Input).value = shown(value)

    def save_config(self) -> None:
        target = self.query_one("#config-path", Input).value.strip()
        if not target:
            self.notify("Type a file name for the config first.", severity="warning")
            return
        path = Path(target).expanduser()
        try:
            if path.exists():
                raise UserError(f"{path} already exists; choose another name.")
            atomic_write_text(path, self.parameters().to_toml())
        except (UserError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"Saved {path} (use it with lora-tui train --config).")

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        self.check_form_then(estimate_only=False)

    @on(Button.Pressed, "#estimate")
    def action_estimate(self) -> None:
        self.check_form_then(estimate_only=True)

    @on(Button.Pressed, "#queue-run")
    def action_queue(self) -> None:
        problem = self.form_problem()
        if problem is not None:
            self.notify(f"Not ready to queue: {problem}", severity="warning")
            return
        try:
            runs = self.planned_runs()
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        fraction = self.query_one("#pick-valid", Select).value
        self.query_one("#queue-run", Button).disabled = True
        self.add_to_queue(
            self.hub_id() or str(self.query_one("#pick-model", Select).value),
            self.dataset_text(),
            runs,
            float(fraction) if fraction else None,
        )

    def planned_runs(self) -> list[PlannedRun]:
        """The form's run, or one run per point of the grid its swept fields make."""
        fixed = {f.param.name: f.value() for f in self.fields() if not f.swept()}
        name = validate_name(self.query_one("#pick-name", Input).value, "adapter name")
        axes = [f.axis() for f in self.fields() if f.swept()]
        if not axes:
            return [PlannedRun(name, fixed)]
        points = expand_grid(name, axes, {})
        return [PlannedRun(p.name, {**fixed, **p.values}, {"name": name, "values": p.values}) for p in points]

    @work(thread=True, exclusive=True, group="train-queue", exit_on_error=False)
    def add_to_queue(self, model: str, data: str, runs: list, valid_fraction: float | None) -> None:
        app = self.app
        try:
            jobs = queue_runs(app.locations, app.settings.extra_model_dirs(), model, data, runs, valid_fraction)
        except DoesNotFit as exc:
            self.post_message(Queued(str(exc), failed=True, fixes=tuple(exc.fixes)))
            return
        except UserError as exc:
            self.post_message(Queued(str(exc), failed=True))
            return
        names = ", ".join(job.name for job in jobs)
        self.post_message(Queued(f"Queued {counted(len(jobs), 'run')}: {names}. The Dashboard's u runs the queue."))

    @on(Queued)
    def queued(self, message: Queued) -> None:
        self.refresh_start()
        if message.fixes:
            self.app.push_screen(FitDialog(message.text, list(message.fixes)), self.apply_fix)
            return
        self.notify(message.text, severity="error" if message.failed else "information", timeout=10)

    def check_form_then(self, estimate_only: bool) -> None:
        if any(field.swept() for field in self.fields()):
            self.notify("A field holds several values (a sweep): Queue adds its runs to the queue.", severity="warning")
            return
        problem = self.form_problem()
        if problem == CHECKING:  # Start pressed while the dataset is being read: start once it is
            self.start_when_checked = estimate_only
            return
        if problem is not None:
            self.notify(f"Not ready to start: {problem}", severity="warning")
            return
        self.query_one("#start", Button).disabled = True
        self.query_one("#estimate", Button).disabled = True
        model = self.hub_id() or str(self.query_one("#pick-model", Select).value)
        fraction = self.query_one("#pick-valid", Select).value
        self.check_and_start(
            model,
            self.query_one("#pick-data", Input).value.strip(),
            self.query_one("#pick-name", Input).value,
            self.parameters().to_json(),
            float(fraction) if fraction else None,
            estimate_only,
            None if estimate_only else self.hostfile(),
        )

    @work(thread=True, exclusive=True, group="train-start", exit_on_error=False)
    def check_and_start(
        self,
        model: str,
        data: str,
        name: str,
        flags: dict,
        valid_fraction: float | None,
        estimate_only: bool,
        hostfile: Path | None,
    ) -> None:
        """Off the UI thread: resolving (maybe downloading) the model, checking every line of the data
        and reaching every host take time."""
        app = self.app
        fixes = ()
        try:
            if hostfile is not None:
                check_hosts(hostfile)
            job, report = prepare_job(
                app.locations,
                app.settings.extra_model_dirs(),
                name,
                model,
                data,
                flags=flags,
                valid_fraction=valid_fraction,
                ranks=len(read_hostfile(hostfile)) if hostfile is not None else 1,
            )
            problem = None
            if report is not None:
                problem = f"The dataset has {report.first_error()}"
        except DoesNotFit as exc:
            job, problem, fixes = None, str(exc), tuple(exc.fixes)
        except UserError as exc:
            job, problem = None, str(exc)
        self.post_message(StartChecked(job, problem, estimate_only, hostfile, fixes))

    @on(StartChecked)
    def started(self, message: StartChecked) -> None:
        if message.problem and message.fixes:
            self.refresh_start()
            self.app.push_screen(FitDialog(message.problem, list(message.fixes)), self.apply_fix)
            return
        if message.problem:
            self.refresh_start()
            self.notify(message.problem, severity="error", timeout=8)
            return
        if message.estimate_only:
            self.query_one("#form-status", Static).update("measuring a few real training steps...")
            self.measure(message.job)
            return
        self.refresh_start()
        self.app.post_message(TrainingRequested(message.job, message.hostfile))

    def apply_fix(self, values: dict | None) -> None:
        """A change from the fit dialog, written into the form's fields (then checked as if typed)."""
        if not values:
            return
        for name, value in values.items():
            self.query_one(f"#param-{name}", Input).value = shown(value)
        applied = ", ".join(f"{name.replace('_', ' ')} {shown(value)}" for name, value in values.items())
        self.notify(f"Applied {applied}. Start (ctrl+s) trains with it.")

    @work(thread=True, exclusive=True, group="train-estimate", exit_on_error=False)
    def measure(self, job) -> None:
        with mlx_worker_thread():
            try:
                estimate = estimate_run(job)
            except UserError as exc:
                self.post_message(EstimateMeasured(str(exc), failed=True))
                return
            self.post_message(EstimateMeasured(f"measured: {estimate.describe()}"))

    @on(EstimateMeasured)
    def show_estimate(self, message: EstimateMeasured) -> None:
        self.refresh_start()
        self.query_one("#form-status", Static).update(message.text)
        self.notify(message.text, severity="error" if message.failed else "information", timeout=12)
