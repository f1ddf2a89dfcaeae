"""Where lora-tui keeps its files.

platformdirs gives the usual per-user folders; `LORA_TUI_HOME` moves all of
them under one folder (tests use it, and so do users who keep data elsewhere).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "lora-tui"
HOME_VARIABLE = "LORA_TUI_HOME"


@dataclass(frozen=True)
class Locations:
    data_dir: Path
    config_dir: Path
    cache_dir: Path

    @classmethod
    def from_environment(cls) -> Locations:
        home = os.environ.get(HOME_VARIABLE)
        if home:
            root = Path(home).expanduser()
            return cls(root / "data", root / "config", root / "cache")
        return cls(
            Path(platformdirs.user_data_dir(APP_NAME)),
            Path(platformdirs.user_config_dir(APP_NAME)),
            Path(platformdirs.user_cache_dir(APP_NAME)),
        )

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def adapters_dir(self) -> Path:
        return self.data_dir / "adapters"

    @property
    def exports_dir(self) -> Path:
        """Where the app puts an export given no other place."""
        return self.data_dir / "exports"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def recent_datasets_file(self) -> Path:
        return self.data_dir / "recent-datasets.json"

    @property
    def column_maps_file(self) -> Path:
        """The column mapping chosen in the app for each table file."""
        return self.data_dir / "column-maps.json"

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.toml"

    @property
    def user_themes_dir(self) -> Path:
        return self.config_dir / "themes"

    def ensure(self) -> Locations:
        for folder in (self.models_dir, self.adapters_dir, self.runs_dir, self.config_dir, self.cache_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self
