"""Column mapping: which column of a table (or field of a JSONL record) holds which part of a record.

`--columns prompt=question,completion=answer` names, for each part lora-tui knows, the column
that holds it; the mapped record is then read like any JSONL line of that format. Without a
mapping a column counts when its name is a part's own name. When the names say nothing,
`propose_columns` guesses a mapping from the names and the values, for the user to confirm.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_write_text

# The parts of a record, as the formats name them (records.py).
KEYS = (
    "messages",
    "text",
    "prompt",
    "completion",
    "system",
    "chosen",
    "rejected",
    "answer",
    "instruction",
    "input",
    "output",
    "tools",
)
# Parts that may be absent or empty in a row (an instruction without input, a record without a system prompt).
OPTIONAL_KEYS = frozenset({"system", "input", "tools", "answer"})
# Parts that may hold a list of messages instead of text (TRL's preference shapes).
MESSAGE_KEYS = frozenset({"prompt", "chosen", "rejected"})
LIST_KEYS = frozenset({"messages", "tools"})
# The parts each format needs, in the order a proposal prefers them.
FORMAT_KEYS = (
    ("messages",),
    ("prompt", "chosen", "rejected"),
    ("prompt", "completion"),
    ("prompt", "answer"),  # GRPO's prompts, scored against the answer
    ("instruction", "output"),
    ("text",),
)
ASSIGNMENT = re.compile(r"^\s*(?P<key>[a-z_]+)\s*=\s*(?P<column>.+?)\s*$")

# Column names that usually hold a part (lower case, spaces and dashes as underscores).
SYNONYMS = {
    "messages": ("messages", "conversations", "conversation", "chat", "dialog", "dialogue"),
    "system": ("system", "system_prompt", "system_message"),
    "prompt": ("prompt", "question", "query", "input_text", "user", "human", "q", "problem", "request"),
    "completion": ("completion", "answer", "response", "output_text", "assistant", "reply", "a", "solution", "target"),
    "instruction": ("instruction", "instructions", "task"),
    "input": ("input", "context"),
    "output": ("output",),
    "chosen": ("chosen", "preferred", "accepted"),
    "rejected": ("rejected", "dispreferred"),
    "text": ("text", "content", "body", "document", "passage", "article"),
}


def parse_columns(text: str | None) -> dict[str, str] | None:
    """ "prompt=question,completion=answer" -> {"prompt": "question", "completion": "answer"}; None for none."""
    if text is None or not text.strip():
        return None
    mapping: dict[str, str] = {}
    for part in text.split(","):
        match = ASSIGNMENT.match(part)
        if not match:
            raise UserError(f"--columns: {part.strip()!r} is not KEY=COLUMN (e.g. prompt=question,completion=answer).")
        key, column = match["key"], match["column"]
        if key not in KEYS:
            raise UserError(f"--columns: {key!r} is not a part of a record; the parts are {', '.join(KEYS)}.")
        if key in mapping:
            raise UserError(f"--columns: {key} is given twice.")
        mapping[key] = column
    return mapping


def format_columns(mapping: dict[str, str] | None) -> str:
    return ",".join(f"{key}={column}" for key, column in (mapping or {}).items())


def check_names_a_format(mapping: dict[str, str]) -> None:
    """A mapping must give every part of at least one format (prompt and completion, say)."""
    if not any(all(key in mapping for key in needed) for needed in FORMAT_KEYS):
        formats = "; ".join("+".join(needed) for needed in FORMAT_KEYS)
        raise UserError(f"--columns {format_columns(mapping)} maps no whole format; give the parts of one: {formats}.")


def identity_columns(names: list[str]) -> dict[str, str] | None:
    """The columns that already bear a part's name, when they make up a format; else None."""
    mapping = {key: key for key in KEYS if key in names}
    return mapping if any(all(key in mapping for key in needed) for needed in FORMAT_KEYS) else None


def check_columns_exist(mapping: dict[str, str], names: list[str], path: Path) -> None:
    missing = [column for column in mapping.values() if column not in names]
    if missing:
        raise UserError(
            f"{path}: no column {', '.join(repr(c) for c in missing)} (the columns are {', '.join(names) or 'none'})."
        )


class ValueProblem(Exception):
    """One value of a row cannot be the part it is mapped to."""


def map_values(values: dict, mapping: dict[str, str]) -> dict:
    """A row (or JSONL object) as the record it holds: each mapped part from its column, checked by type."""
    record = {}
    for key, column in mapping.items():
        if column not in values:
            raise ValueProblem(f"no column {column!r}")
        value = _part_value(key, column, values[column])
        if value is not None:
            record[key] = value
    return record


def _part_value(key: str, column: str, value):
    empty = value is None or (isinstance(value, str) and not value.strip()) or value == []
    if empty:
        if key in OPTIONAL_KEYS:
            return None
        raise ValueProblem(f"column {column!r} ({key}) is empty")
    if key == "answer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if key in LIST_KEYS or (key in MESSAGE_KEYS and isinstance(value, list)):
        if not isinstance(value, list):
            value = _json_list(value, key, column)
        return value
    if not isinstance(value, str):
        raise ValueProblem(f"column {column!r} ({key}) holds {_type_word(value)}; {key} needs text")
    return value


def _json_list(value, key: str, column: str) -> list:
    """A list kept as JSON text (how a CSV holds a conversation)."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    raise ValueProblem(f"column {column!r} ({key}) holds {_type_word(value)}; {key} needs a list")


def _type_word(value) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# Proposing a mapping -------------------------------------------------------------------


def _normal(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def propose_columns(names: list[str], rows: list[dict]) -> dict[str, str] | None:
    """A mapping guessed from the column names, then from the values; None when nothing fits."""
    by_normal = {_normal(name): name for name in names}
    mapping: dict[str, str] = {}
    for key, synonyms in SYNONYMS.items():
        column = next((by_normal[s] for s in synonyms if s in by_normal and by_normal[s] not in mapping.values()), None)
        if column is not None:
            mapping[key] = column
    proposal = _complete_format(mapping)
    if proposal:
        return proposal
    return _from_values(names, rows)


def _complete_format(mapping: dict[str, str]) -> dict[str, str] | None:
    """The parts of the first format the guessed parts complete (with its optional parts), else None."""
    optional = {"system": ("prompt", "instruction"), "input": ("instruction",)}
    for needed in FORMAT_KEYS:
        if all(key in mapping for key in needed):
            keys = [*needed, *(k for k, formats_of in optional.items() if k in mapping and needed[0] in formats_of)]
            return {key: mapping[key] for key in keys}
    return None


def _from_values(names: list[str], rows: list[dict]) -> dict[str, str] | None:
    """Text columns by length: one long one is a text record; a shorter and a longer one, a prompt and its answer."""
    lengths = {}
    for name in names:
        values = [row.get(name) for row in rows]
        if values and all(isinstance(v, str) and v.strip() for v in values):
            lengths[name] = sum(len(v) for v in values) / len(values)
    if len(lengths) == 1:
        return {"text": next(iter(lengths))}
    if len(lengths) == 2:
        short, long = sorted(lengths, key=lengths.get)
        return {"prompt": short, "completion": long}
    return None


# Remembered mappings -----------------------------------------------------------------


@dataclass
class SavedColumns:
    """The mapping chosen for each file in the app, kept so every later use of the file reads it the same way."""

    file: Path

    def _all(self) -> dict[str, str]:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {key: text for key, text in data.items() if isinstance(text, str)}

    def get(self, dataset: Path) -> dict[str, str] | None:
        text = self._all().get(str(Path(dataset).expanduser().resolve()))
        try:
            return parse_columns(text)
        except UserError:
            return None

    def put(self, dataset: Path, mapping: dict[str, str] | None) -> None:
        data = self._all()
        key = str(Path(dataset).expanduser().resolve())
        if mapping:
            data[key] = format_columns(mapping)
        else:
            data.pop(key, None)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.file, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
