"""A Select of the models on this machine, filled off the UI thread."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.message import Message
from textual.widgets import Select

from lora_tui.core.models.store import discover_models
from lora_tui.worker_errors import ReportsWorkerErrors


class ModelPicker(ReportsWorkerErrors, Select[str]):
    """Values are model folder paths; the first model found is chosen when `preselect` is set."""

    @dataclass
    class Found(Message):
        picker: ModelPicker
        models: list

    def __init__(self, *, preselect: bool = True, prompt: str = "choose a model", **kwargs) -> None:
        super().__init__([], prompt=prompt, allow_blank=True, **kwargs)
        self.preselect = preselect
        self.models: list = []
        self.wanted: str | None = None  # a value asked for before the options were found
        self.values: list[str] = []

    def on_mount(self) -> None:
        self.discover()

    @work(thread=True, exclusive=True, group="discover-models", exit_on_error=False)
    def discover(self) -> None:
        app = self.app
        models = discover_models(app.locations.models_dir, app.settings.extra_model_dirs())
        self.post_message(self.Found(self, models))

    @on(Found)
    def show_models(self, message: Found) -> None:
        message.stop()
        self.models = message.models
        chosen = self.wanted or self.value
        self.show_options(chosen)
        if chosen not in self.values and self.preselect and message.models:
            self.value = str(message.models[0].path)

    def show_options(self, chosen) -> None:
        """The found options, plus `chosen` when it is a model folder found nowhere else."""
        options = self.options_for(self.models)
        values = [value for _, value in options]
        if isinstance(chosen, str) and chosen not in values and Path(chosen).is_dir():
            options.append((f"{Path(chosen).name} (folder)", chosen))
        self.values = [value for _, value in options]
        self.set_options(options)
        if chosen in self.values:
            self.value = chosen

    def options_for(self, models: list) -> list[tuple[str, str]]:
        return [(f"{m.name} ({m.quantization['bits']}-bit)" if m.quantization else m.name, str(m.path)) for m in models]

    def choose(self, value: str) -> None:
        """Select `value` (a model path) now, or as soon as the options are found."""
        self.wanted = str(value)
        if self.wanted in self.values:
            self.value = self.wanted
        elif self.values:
            self.show_options(self.wanted)

    def chosen_path(self) -> str | None:
        return None if self.value is Select.NULL else str(self.value)
