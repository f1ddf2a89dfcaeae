"""How the command line talks: progress on stderr, results and JSON on stdout."""

from __future__ import annotations

import json
import sys
import time
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


class ByteProgress:
    """`done/total` bytes as one line on stderr, redrawn in place on a terminal (speed and time left),
    and as a line every quarter where stderr is a file or a pipe."""

    def __init__(self, label: str, min_interval: float = 0.2) -> None:
        self.label, self.min_interval = label, min_interval
        self.started = time.monotonic()
        self.last_drawn, self.last_quarter = 0.0, -1
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        from lora_tui.core.units import human_bytes

        now = time.monotonic()
        finished = total and done >= total
        if self.tty and (now - self.last_drawn >= self.min_interval or finished):
            elapsed = max(now - self.started, 1e-6)
            speed = done / elapsed
            left = f", {(total - done) / speed:.0f} s left" if speed and not finished else ""
            percent = f"{100 * done / total:3.0f}%" if total else "   "
            line = f"{self.label} {percent} {human_bytes(done)} of {human_bytes(total)}, {human_bytes(speed)}/s{left}"
            print(f"\r{line}\x1b[K", end="\n" if finished else "", file=sys.stderr, flush=True)
            self.last_drawn = now
        elif not self.tty and total and (quarter := 4 * done // total) > self.last_quarter:
            self.last_quarter = quarter
            print(f"{self.label} {25 * quarter}%", file=sys.stderr, flush=True)
