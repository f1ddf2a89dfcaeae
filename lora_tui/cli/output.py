"""How the command line talks: progress on stderr, results and JSON on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from lora_tui.core.locations import Locations
from lora_tui.settings import Settings


@dataclass
class Context:
    locations: Locations

    @cached_property
    def settings(self) -> Settings:
        return Settings.load(self.locations)

    def extra_model_dirs(self) -> list[Path]:
        return self.settings.extra_model_dirs()


def say(message: str) -> None:
    """Progress for people: stderr, so stdout stays clean for scripts."""
    print(message, file=sys.stderr, flush=True)


def print_json(document) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for row in (headers, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def shown(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)
