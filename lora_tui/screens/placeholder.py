"""Areas whose screens are not built yet say so, and name the CLI that does the job today."""

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static

from lora_tui.widgets.area_bar import AreaBar

NOT_YET = {
    "datasets": "The Datasets screen is not built yet. Today: lora-tui data check FILE --model M, "
                "data split, data redact, data from-docs.",
    "adapters": "The Adapters screen is not built yet. Today: lora-tui adapters list | show | rename | delete | fuse | export.",
    "chat": "The Chat screen is not built yet. Today: lora-tui chat --model M [--adapter NAME].",
}


class NotYetScreen(Screen):
    def __init__(self, area: str) -> None:
        super().__init__()
        self.area = area

    def compose(self) -> ComposeResult:
        yield AreaBar(self.area)
        yield Static(NOT_YET[self.area], classes="not-yet", markup=False)
        yield Footer(compact=True, show_command_palette=False)
