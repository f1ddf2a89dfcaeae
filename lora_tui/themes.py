"""Theme files: TOML in the repository's themes/ folder and the user's config dir.

Textual has no theme-file loader; this one validates every colour with
`Color.parse` and reports a bad file instead of failing the app.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from lora_tui.core.toml import TOMLDecodeError, tomllib


def _built_in_themes() -> Path:
    """themes/ of a source checkout (editable installs), else where the installed wheel put them."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "themes").is_dir():
        return root / "themes"
    # A wheel installs them as data files under its scheme's share/ (a venv, --user, /usr/local, ...): the
    # distribution's own file list says where.
    try:
        files = distribution("lora-tui").files or []
    except PackageNotFoundError:
        files = []
    for file in files:
        if file.parent.name == "themes" and file.suffix == ".toml":
            return Path(file.locate()).resolve().parent
    return Path(sys.prefix) / "share" / "lora-tui" / "themes"


BUILT_IN_THEMES = _built_in_themes()
COLOUR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
)


@dataclass(frozen=True)
class ThemeProblem:
    path: Path
    message: str


def theme_from_file(path: Path) -> Theme:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, TOMLDecodeError) as exc:
        raise ValueError(f"not valid TOML ({exc})") from None
    if not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise ValueError("it needs a name")
    if "primary" not in raw:
        raise ValueError("it needs a primary colour")
    unknown = set(raw) - {"name", "dark", *COLOUR_KEYS}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    for key in COLOUR_KEYS:
        if key in raw:
            try:
                Color.parse(raw[key])
            except (ColorParseError, TypeError):
                raise ValueError(f"{key} = {raw[key]!r} is not a colour") from None
    return Theme(name=raw["name"], dark=bool(raw.get("dark", True)), **{k: raw[k] for k in COLOUR_KEYS if k in raw})


def load_themes(*folders: Path) -> tuple[list[Theme], list[ThemeProblem]]:
    themes, problems = [], []
    for folder in folders:
        for path in sorted(Path(folder).glob("*.toml")) if Path(folder).is_dir() else []:
            try:
                themes.append(theme_from_file(path))
            except ValueError as exc:
                problems.append(ThemeProblem(path, str(exc)))
    return themes, problems
