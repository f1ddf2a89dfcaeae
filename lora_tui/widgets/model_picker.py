"""A Select of the models on this machine, filled off the UI thread.

Below the MLX models it offers the GGUF models of Ollama and LM Studio and a download from the
hub; choosing one of those asks the app to fetch it (ModelFetchRequested) and keeps the model
chosen before, until the new one is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.message import Message
from textual.widgets import Select

from lora_tui.core.models.gguf_stores import StoredGGUF, discover_stored_ggufs
from lora_tui.core.models.store import discover_models
from lora_tui.messages import ModelFetchRequested
from lora_tui.worker_errors import ReportsWorkerErrors

FETCH_PREFIX = "fetch:"  # an option that is not a model yet, but one to get
HUB_CHOICE = FETCH_PREFIX + "hub"
IMPORT_PREFIX = FETCH_PREFIX + "gguf:"


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
        self.stored: dict[str, StoredGGUF] = {}  # option value -> the GGUF it imports
        self.last_model = Select.NULL  # what to show again when a fetch option is chosen

    def on_mount(self) -> None:
        self.discover()

    @work(thread=True, exclusive=True, group="discover-models", exit_on_error=False)
    def discover(self) -> None:
        self.post_message(self.Found(self, self.gather()))

    def gather(self) -> list:
        """The models to offer (in the worker thread); subclasses gather more."""
        app = self.app
        self.stored = {IMPORT_PREFIX + str(g.path): g for g in discover_stored_ggufs()}
        return discover_models(app.locations.models_dir, app.settings.extra_model_dirs())

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
        mlx = [(f"{m.name} ({m.quantization['bits']}-bit)" if m.quantization else m.name, str(m.path)) for m in models]
        return mlx + self.extra_options() + self.fetch_options()

    def extra_options(self) -> list[tuple[str, str]]:
        return []

    def fetch_options(self) -> list[tuple[str, str]]:
        labels = {"ollama": "Ollama", "lm-studio": "LM Studio"}
        imports = [
            (f"{g.name} ({labels.get(g.source, g.source)} {g.quantization}: import)", value)
            for value, g in self.stored.items()
        ]
        return [*imports, ("download from the Hugging Face hub...", HUB_CHOICE)]

    @on(Select.Changed)
    def fetch_when_asked(self, event: Select.Changed) -> None:
        value = event.value
        if not isinstance(value, str) or not value.startswith(FETCH_PREFIX):
            self.last_model = value
            return
        event.stop()  # not a model yet: the screens go on with the one chosen before
        self.value = self.last_model
        self.post_message(ModelFetchRequested(self, self.stored.get(value)))

    def fetched(self, path: Path) -> None:
        """A model the app just imported or downloaded: offer it and choose it."""
        self.wanted = str(path)
        self.discover()

    def choose(self, value: str) -> None:
        """Select `value` (a model path) now, or as soon as the options are found."""
        self.wanted = str(value)
        if self.wanted in self.values:
            self.value = self.wanted
        elif self.values:
            self.show_options(self.wanted)

    def chosen_path(self) -> str | None:
        if self.value is Select.NULL or str(self.value).startswith(FETCH_PREFIX):
            return None
        return str(self.value)
