"""The Train screen: a form generated from the parameter table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static

from lora_tui.core.errors import UserError
from lora_tui.core.params import PARAMS, Param, build_params
from lora_tui.widgets.area_bar import AreaBar
from lora_tui.widgets.model_picker import ModelPicker

PRESETS = {
    "style": {"rank": "8", "epochs": "3", "learning_rate": "0.0001"},
    "knowledge": {"rank": "32", "epochs": "8", "learning_rate": "0.0002", "target_modules": "q,k,v,o,gate,up,down"},
}


def shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


class ParamField(Horizontal):
    """One parameter: its input, range and help; marked when the value is invalid."""

    def __init__(self, param: Param) -> None:
        super().__init__(classes="param-field", id=f"field-{param.name}")
        self.param = param
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Label(self.param.name.replace("_", " "), classes="param-name")
        placeholder = "auto" if self.param.optional else ""
        yield Input(shown(self.param.default), placeholder=placeholder, id=f"param-{self.param.name}", classes="param-input")
        yield Static(f"[{self.param.range_text}] {self.param.help}", classes="param-help", markup=False)

    def value(self):
        text = self.query_one(Input).value.strip()
        return self.param.parse(text if text or not self.param.optional else None)

    def validate_now(self) -> bool:
        try:
            self.value()
            self.error = None
        except UserError as exc:
            self.error = str(exc)
        self.set_class(self.error is not None, "-invalid")
        self.query_one(".param-help", Static).update(self.error or f"[{self.param.range_text}] {self.param.help}")
        return self.error is None


@dataclass
class StartChecked(Message):
    job: object | None
    problem: str | None


class TrainScreen(Screen):
    BINDINGS = [
        Binding("ctrl+s", "start", "Start", id="start-training"),
    ]

    def compose(self) -> ComposeResult:
        yield AreaBar("train")
        with VerticalScroll(id="train-form"):
            with Horizontal(classes="picker"):
                yield Label("model", classes="param-name")
                yield ModelPicker(id="pick-model")
            with Horizontal(classes="picker"):
                yield Label("dataset", classes="param-name")
                yield Input(placeholder="a .jsonl file, or a folder with train.jsonl (and valid.jsonl)", id="pick-data")
            with Horizontal(classes="picker"):
                yield Label("adapter name", classes="param-name")
                yield Input(placeholder="letters, digits, _ - and spaces", id="pick-name")
            with Horizontal(id="presets"):
                for preset in PRESETS:
                    yield Button(f"preset: {preset}", id=f"preset-{preset}")
                yield Input(placeholder="config file to save, e.g. run.toml", id="config-path")
                yield Button("save as config", id="save-config")
            for param in PARAMS:
                yield ParamField(param)
        with Horizontal(id="train-actions"):
            yield Static("", id="form-status")
            yield Button("Start training", variant="primary", id="start", disabled=True)
        yield Footer(compact=True, show_command_palette=False)

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
        self.refresh_start()

    def form_problem(self) -> str | None:
        invalid = [f for f in self.fields() if not f.validate_now()]
        if invalid:
            return f"{len(invalid)} invalid field(s): {invalid[0].error}"
        if self.query_one("#pick-model", Select).value is Select.NULL:
            return "choose a model"
        if not self.query_one("#pick-data", Input).value.strip():
            return "give a dataset"
        if not self.query_one("#pick-name", Input).value.strip():
            return "name the adapter"
        return None

    def refresh_start(self) -> None:
        problem = self.form_problem()
        self.query_one("#start", Button).disabled = problem is not None
        self.query_one("#form-status", Static).update(problem or "ready")

    @on(Button.Pressed, "#presets Button")
    def apply_preset(self, event: Button.Pressed) -> None:
        if event.button.id == "save-config":
            self.save_config()
            return
        for name, value in PRESETS[event.button.id.removeprefix("preset-")].items():
            self.query_one(f"#param-{name}", Input).value = value

    def save_config(self) -> None:
        from lora_tui.core.files import atomic_write_text

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
        if self.form_problem() is not None:
            return
        self.query_one("#start", Button).disabled = True
        self.check_and_start(str(self.query_one("#pick-model", Select).value), self.query_one("#pick-data", Input).value.strip(),
                             self.query_one("#pick-name", Input).value, self.parameters().to_json())

    @work(thread=True, exclusive=True, group="train-start")
    def check_and_start(self, model: str, data: str, name: str, flags: dict) -> None:
        """Off the UI thread: resolving the model and checking every line of the data take time."""
        from lora_tui.core.training_setup import prepare_job

        app = self.app
        try:
            job, report = prepare_job(app.locations, app.settings.extra_model_dirs(), name, model, data, flags=flags)
            problem = None
            if report is not None:
                first = report.errors[0]
                problem = f"The dataset has {report.error_count} error(s); line {first.line}: {first.message}"
        except UserError as exc:
            job, problem = None, str(exc)
        self.post_message(StartChecked(job, problem))

    @on(StartChecked)
    def started(self, message: StartChecked) -> None:
        self.refresh_start()
        if message.problem:
            self.notify(message.problem, severity="error", timeout=8)
            return
        from lora_tui.messages import TrainingRequested

        self.app.post_message(TrainingRequested(message.job))
