"""TOML in and out: config files, settings, themes."""

from __future__ import annotations

import sys
from pathlib import Path

from lora_tui.core.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOMLDecodeError = tomllib.TOMLDecodeError


def read_toml(path: Path, missing: str = "no such file") -> dict:
    """The table in `path`; a missing or broken file is one UserError naming it."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: {missing}.") from None
    except (TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc}).") from None


def to_toml(values: dict) -> str:
    """TOML for a flat table of strings, numbers, booleans and lists of those."""
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in values.items() if value is not None)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
