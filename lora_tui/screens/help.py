"""`?` or F1: what the screen in front is for, and its keys with one line each."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from lora_tui.widgets.app_footer import AppFooter

AREA_KEYS_HELP = "1-5 switch areas, Ctrl+P opens the command palette, Ctrl+Q quits."


class HelpScreen(ModalScreen):
    DEFAULT_CLASSES = "dialog-screen"
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close", id="close-help"),
        Binding("question_mark,f1", "dismiss(None)", "Close", show=False),
    ]

    def __init__(self, screen: Screen, title: str) -> None:
        super().__init__()
        self.about, self.title_text = screen, title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help"):
            yield Static(f"{self.title_text}: what it is for, and its keys", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(Text(" ".join(getattr(self.about, "PURPOSE", "").split())), id="help-purpose")
                yield Static(self.keys_table(), id="help-keys")
                yield Static(AREA_KEYS_HELP, id="help-areas")
        yield AppFooter()

    def keys_table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for binding in self.about.BINDINGS:
            if isinstance(binding, Binding) and binding.description:
                line = binding.description + (f": {binding.tooltip}" if binding.tooltip else "")
                table.add_row(self.app.get_key_display(binding), line)
        return table
