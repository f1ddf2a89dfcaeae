"""A Select of the models on this machine, filled off the UI thread."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.message import Message
from textual.widgets import Select


class ModelPicker(Select[str]):
    """Values are model folder paths; the first model found is chosen when `preselect` is set."""

    @dataclass
    class Found(Message):
        picker: ModelPicker
        models: list

    def __init__(self, *, preselect: bool = True, prompt: str = "choose a model", **kwargs) -> None:
        super().__init__([], prompt=prompt, allow_blank=True, **kwargs)
        self.preselect = preselect
        self.models: list = []

    def on_mount(self) -> None:
        self.discover()

    @work(thread=True, exclusive=True, group="discover-models")
    def discover(self) -> None:
        from lora_tui.core.models import discover_models

        app = self.app
        models = discover_models(app.locations.models_dir, app.settings.extra_model_dirs())
        self.post_message(self.Found(self, models))

    @on(Found)
    def show_models(self, message: Found) -> None:
        message.stop()
        self.models = message.models
        chosen = self.value
        self.set_options(self.options_for(message.models))
        if chosen is not Select.NULL and any(str(m.path) == chosen for m in message.models):
            self.value = chosen
        elif self.preselect and message.models:
            self.value = str(message.models[0].path)

    def options_for(self, models: list) -> list[tuple[str, str]]:
        return [(f"{m.name} ({m.quantization['bits']}-bit)" if m.quantization else m.name, str(m.path)) for m in models]

    def chosen_path(self) -> str | None:
        return None if self.value is Select.NULL else str(self.value)
