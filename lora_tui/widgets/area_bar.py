"""The top line of every screen: the areas and their number keys, the current one marked."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

AREAS = ("datasets", "train", "dashboard", "adapters", "chat")


class AreaBar(Horizontal):
    def __init__(self, current: str) -> None:
        super().__init__(id="area-bar")
        self.current = current

    def compose(self) -> ComposeResult:
        yield Label("lora-tui", id="app-name")
        for number, area in enumerate(AREAS, start=1):
            yield Label(f"{number} {area.title()}", classes="area -current" if area == self.current else "area")
        yield Label("^p commands", id="palette-hint")
