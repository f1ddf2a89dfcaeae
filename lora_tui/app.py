"""The Textual app.

For now one screen: the models lora-tui can see. The areas of the full shell
(Datasets, Train, Dashboard, Adapters, Chat) arrive with the TUI issues.
"""

from __future__ import annotations

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from lora_tui.core.models import ModelInfo, discover_models
from lora_tui.core.units import human_bytes, human_count
from lora_tui.locations import Locations
from lora_tui.settings import Settings


class ModelsFound(Message):
    def __init__(self, models: list[ModelInfo]) -> None:
        super().__init__()
        self.models = models


class LoraTuiApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "lora-tui"
    BINDINGS = [
        Binding("r", "refresh_models", "Refresh", id="refresh"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, locations: Locations, settings: Settings) -> None:
        super().__init__()
        self.locations = locations
        self.settings = settings

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Models", id="models-title")
        yield DataTable(id="models", cursor_type="row", zebra_stripes=True)
        yield Static("", id="models-hint")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#models", DataTable)
        table.add_columns("Name", "Arch", "Params", "Quantization", "Size", "Chat", "Source")
        self.action_refresh_models()

    def action_refresh_models(self) -> None:
        self.find_models()

    @work(thread=True, exclusive=True, group="models")
    def find_models(self) -> None:
        models = discover_models(self.locations.models_dir, self.settings.extra_model_dirs())
        self.post_message(ModelsFound(models))

    @on(ModelsFound)
    def show_models(self, message: ModelsFound) -> None:
        table = self.query_one("#models", DataTable)
        table.clear()
        for model in message.models:
            table.add_row(
                model.name, model.architecture, human_count(model.parameters), model.quantization_label,
                human_bytes(model.size_bytes), "yes" if model.has_chat_template else "no", model.source,
            )
        hint = "" if message.models else "No models yet: run `lora-tui models demo` or `lora-tui models import-gguf FILE`."
        self.query_one("#models-hint", Static).update(hint)


def make_app(locations: Locations | None = None, settings: Settings | None = None) -> LoraTuiApp:
    locations = locations or Locations.from_environment()
    return LoraTuiApp(locations, settings or Settings.load(locations))
