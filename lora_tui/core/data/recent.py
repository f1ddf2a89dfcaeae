"""Recently opened datasets, newest first, kept in a small JSON file."""

from __future__ import annotations

import json
from pathlib import Path

from lora_tui.core.files import atomic_write_text, exclusively

KEEP = 10


class RecentFiles:
    def __init__(self, store: Path) -> None:
        self.store = Path(store)

    def load(self) -> list[Path]:
        """The remembered paths that still exist; an unreadable store counts as empty."""
        try:
            raw = json.loads(self.store.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        if not isinstance(raw, list):
            return []
        return [Path(item) for item in raw if isinstance(item, str) and Path(item).exists()]

    def add(self, path: Path) -> list[Path]:
        """Put `path` first; read and written under a lock, so two app instances both keep their files."""
        path = Path(path).expanduser().resolve()
        with exclusively(self.store):
            paths = [path, *(p for p in self.load() if p != path)][:KEEP]
            atomic_write_text(self.store, json.dumps([str(p) for p in paths], indent=1))
        return paths
