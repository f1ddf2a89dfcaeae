"""User settings, kept as TOML in the config dir."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_write_text, exclusively
from lora_tui.core.locations import Locations
from lora_tui.core.toml import read_toml, to_toml


@dataclass
class Settings:
    model_dirs: list[str] = field(default_factory=list)
    """Extra folders searched for MLX models, besides lora-tui's own models dir,
    the Hugging Face hub cache and LM Studio's models folder."""

    theme: str = "lora-dark"
    """Name of the theme the app opens with."""

    spacy_pipeline: str = "en_core_web_sm"
    """spaCy pipeline used to find names, organizations and places in PII redaction."""

    datasets_root: str = "~"
    """Folder the Datasets screen's file browser starts in."""

    @classmethod
    def load(cls, locations: Locations) -> Settings:
        path = locations.settings_file
        if not path.exists():
            return cls()
        return cls.from_dict(read_toml(path), source=path)

    @classmethod
    def from_dict(cls, raw: dict, source: Path | str = "settings") -> Settings:
        defaults = cls()
        known = {f.name for f in fields(cls)}
        for key, value in raw.items():
            if key not in known:
                raise UserError(f"{source}: unknown setting {key!r} (known: {', '.join(sorted(known))}).")
            expected = type(getattr(defaults, key))
            if not isinstance(value, expected) or (
                expected is list and not all(isinstance(item, str) for item in value)
            ):
                raise UserError(f"{source}: setting {key!r} must be a {_type_word(expected)}.")
        return cls(**raw)

    def save(self, locations: Locations) -> None:
        locations.config_dir.mkdir(parents=True, exist_ok=True)
        with exclusively(locations.settings_file):
            atomic_write_text(locations.settings_file, to_toml(asdict(self)))

    @classmethod
    def update(cls, locations: Locations, **changes) -> Settings:
        """Change some settings in the file, keeping what other processes wrote to the others.

        Read, change and write happen under one lock, so two app instances changing
        different settings both keep their change (the same setting: the last one wins).
        """
        cls.from_dict(changes, source="settings")  # refuse a bad value before touching the file
        with exclusively(locations.settings_file):
            current = cls.load(locations)
            updated = cls(**{**asdict(current), **changes})
            locations.config_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(locations.settings_file, to_toml(asdict(updated)))
        return updated

    def extra_model_dirs(self) -> list[Path]:
        return [Path(folder).expanduser() for folder in self.model_dirs]


def _type_word(kind: type) -> str:
    return {str: "string", list: "list of strings", int: "whole number", float: "number", bool: "true or false"}[kind]
