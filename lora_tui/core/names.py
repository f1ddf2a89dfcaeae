"""Names of models and adapters: safe as folder names, shown as typed."""

from __future__ import annotations

import re

from lora_tui.core.errors import UserError

_ALLOWED = re.compile(r"^[A-Za-z0-9_\- ]+$")
MAX_NAME_LENGTH = 100


def validate_name(name: str, what: str = "name") -> str:
    """Return `name` stripped, or raise UserError saying what is wrong with it."""
    if not isinstance(name, str):
        raise UserError(f"The {what} is missing or not text (got {name!r}).")
    stripped = name.strip()
    if not stripped:
        raise UserError(f"The {what} is empty.")
    if stripped.startswith("-"):
        raise UserError(f"The {what} {name!r} may not start with '-' (a command line would read it as an option).")
    if "/" in stripped or "\\" in stripped or ".." in stripped:
        raise UserError(f"The {what} {name!r} may not contain a path separator or '..'.")
    if len(stripped) > MAX_NAME_LENGTH:
        raise UserError(f"The {what} {name!r} is longer than {MAX_NAME_LENGTH} characters.")
    if not _ALLOWED.match(stripped):
        raise UserError(f"The {what} {name!r} may only contain letters, digits, '_', '-' and spaces.")
    return stripped


def name_from_filename(stem: str) -> str:
    """A valid name made from a file name: other characters become '-'."""
    cleaned = re.sub(r"[^A-Za-z0-9_\- ]+", "-", stem).strip("- ")
    return cleaned[:MAX_NAME_LENGTH] or "model"
