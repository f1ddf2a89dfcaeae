"""Datasets: read every common format line by line, validate, normalise.

Formats, detected per file from its first readable record:
- chat:        {"messages": [{"role": ..., "content": ...}, ...]}
- messages:    [{"role": ..., "content": ...}, ...]   (Apple's adapter toolkit)
- text:        {"text": ...}
- completion:  {"prompt": ..., "completion": ...}
- instruction: {"instruction": ..., "input"?: ..., "output": ...}
- preference:  {"prompt": ..., "chosen": ..., "rejected": ..., "system"?: ...}: the prompt a string or a
               list of messages, each answer a string or a one-message assistant list (TRL's shapes)
- grpo:        {"prompt": ..., "answer"?: ..., "system"?: ...}: a prompt for the model to answer, and what
               reward functions score its answers against (a string or a number)
- plain text:  a .txt file, one example per line
A folder holding train.jsonl (and valid.jsonl, test.jsonl) is mlx-lm's layout.

Tables hold the same records, a row each (tables.py: Parquet, Arrow, CSV/TSV, JSON arrays,
`datasets`' save_to_disk folders, Hub snapshots in the Hugging Face cache); a column mapping
(columns.py) says which column holds which part, for JSONL fields as for table columns.

Every record becomes a `Record`: either a conversation (whose last assistant
turn is the response, everything before it the prompt) or a plain text. A
preference pair is the conversation that ends on the chosen answer, with the
rejected answer beside it. A GRPO prompt is a conversation with no answer yet.
Files are streamed: nothing reads a whole file into memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lora_tui.core.data.columns import (
    ValueProblem,
    check_columns_exist,
    check_names_a_format,
    format_columns,
    identity_columns,
    map_values,
    propose_columns,
)
from lora_tui.core.data.tables import (
    TABLE_SUFFIXES,
    iter_rows,
    sample_rows,
    table_columns,
    table_kind,
    table_shards,
)
from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_writer

ROLES = ("system", "user", "assistant", "tool")
# A web address in a record's text: what lint warns about and redaction replaces.
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'\]\[)]+", re.IGNORECASE)
SPLITS = ("train", "valid", "test")
MAX_REPORTED_ERRORS = 200


@dataclass(frozen=True)
class Record:
    line: int  # 1-based line in its file
    messages: tuple[dict, ...] = ()
    text: str | None = None
    rejected: str | None = None  # a preference pair's rejected answer (the messages end on the chosen one)
    place: str = ""  # how messages name it when not by its line: "row 3 (line 4)" in a table
    tools: tuple[dict, ...] = ()  # the tools a tool-calling conversation declares (mlx-lm's "tools")
    prompt_only: bool = False  # a GRPO prompt: the messages are the prompt, the model writes the answer
    answer: str | None = None  # a GRPO prompt's reference answer, for the rewards

    @property
    def where(self) -> str:
        return self.place or f"line {self.line}"

    @property
    def is_chat(self) -> bool:
        return self.text is None

    @property
    def is_preference(self) -> bool:
        return self.rejected is not None

    @property
    def is_prompt(self) -> bool:
        return self.prompt_only

    @property
    def response(self) -> str:
        """The last assistant turn (empty for plain text and for GRPO prompts)."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "assistant"), "")

    @property
    def prompt_messages(self) -> tuple[dict, ...]:
        """The conversation up to (not including) the last assistant turn."""
        if self.prompt_only:
            return self.messages
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")
        return self.messages[:last]

    def plain_text(self) -> str:
        """All the record's words, for lint and PII scanning."""
        if self.text is not None:
            return self.text
        extra = [self.rejected] if self.is_preference else [self.answer] if self.answer is not None else []
        return "\n".join([m["content"] for m in self.messages] + extra)

    def to_json(self) -> dict:
        if self.prompt_only:
            return {"prompt": list(self.messages), **({"answer": self.answer} if self.answer is not None else {})}
        if self.is_preference:
            return {"prompt": list(self.prompt_messages), "chosen": self.response, "rejected": self.rejected}
        if self.text is not None:
            return {"text": self.text}
        return {"messages": list(self.messages), **({"tools": list(self.tools)} if self.tools else {})}


@dataclass(frozen=True)
class Problem:
    line: int  # a table's row number
    message: str
    file: str | None = None
    place: str = ""  # "row 3 (line 4)" in a table; empty: "line N"

    @property
    def where(self) -> str:
        return self.place or (f"line {self.line}" if self.line else "")

    def to_json(self) -> dict:
        data = {"line": self.line or None, "message": self.message}  # 0: the dataset as a whole, no one line
        if self.place:
            data["place"] = self.place
        if self.file:
            data["file"] = self.file
        return data


class LineError(Exception):
    """One line of a dataset is wrong; caught and reported with its line number."""


# Parsing one record ------------------------------------------------------------


def _string_field(obj: dict, key: str, required: bool = True) -> str:
    if key not in obj:
        if required:
            raise LineError(f"missing field {key!r}")
        return ""
    value = obj[key]
    if not isinstance(value, str):
        raise LineError(f"field {key!r} must be a string, not {_json_type(value)}")
    if required and not value.strip():
        raise LineError(f"field {key!r} is empty")
    return value


def _json_type(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number"
    )


def read_messages(raw) -> tuple[dict, ...]:
    """A conversation to answer (the server's requests): checked as a record's messages are, with no answer yet."""
    return _messages(raw, needs_answer=False, tools=None)


def _messages(raw, name: str = "messages", needs_answer: bool = True, tools: tuple | None = ()) -> tuple[dict, ...]:
    """Checked messages; tool calls must name one of `tools` (None: any name, for requests that declare none)."""
    if not isinstance(raw, list):
        raise LineError(f"{name!r} must be an array, not {_json_type(raw)}")
    if not raw:
        raise LineError(f"{name!r} has no messages" if name != "messages" else "the conversation has no messages")
    messages = []
    for index, message in enumerate(raw, start=1):
        if not isinstance(message, dict):
            raise LineError(f"message {index} must be an object, not {_json_type(message)}")
        role = message.get("role")
        if role not in ROLES:
            shown = "missing" if role is None else repr(role)
            raise LineError(f"message {index} has role {shown}; roles are {', '.join(ROLES)}")
        calls = _tool_calls(message.get("tool_calls"), index, tools) if role == "assistant" else ()
        raw_content = message.get("content")
        content = "" if calls and raw_content in (None, "") else _content_text(raw_content, index, role)
        if not content.strip() and role != "tool" and not calls:
            raise LineError(f"message {index} ({role}) has empty content")
        kept = {"role": role, "content": content}
        if calls:
            kept["tool_calls"] = list(calls)
        if role == "tool":
            kept.update({key: message[key] for key in ("name", "tool_call_id") if isinstance(message.get(key), str)})
        messages.append(kept)
    if needs_answer and not any(m["role"] == "assistant" for m in messages):
        raise LineError("the conversation has no assistant turn")
    return tuple(messages)


def _tools(raw) -> tuple[dict, ...]:
    """A record's "tools": OpenAI's function declarations, as chat templates take them."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise LineError("'tools' must be a non-empty array of tool declarations")
    for index, tool in enumerate(raw, start=1):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            shape = '{"type": "function", "function": {"name": ..., "parameters": ...}}'
            raise LineError(f"tool {index} needs {shape}")
    return tuple(raw)


def tool_names(tools: tuple[dict, ...]) -> set[str]:
    return {tool["function"]["name"] for tool in tools}


def _tool_calls(raw, index: int, tools: tuple[dict, ...] | None) -> tuple[dict, ...]:
    """An assistant message's tool calls: each names a declared tool, with JSON-object arguments."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise LineError(f"message {index} (assistant): 'tool_calls' must be a non-empty array")
    declared = tool_names(tools) if tools is not None else None
    calls = []
    for number, call in enumerate(raw, start=1):
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        where = f"message {index} (assistant), tool call {number}"
        if not isinstance(name, str) or not name:
            raise LineError(f'{where} needs {{"function": {{"name": ..., "arguments": ...}}}}')
        if declared is not None and name not in declared:
            known = ", ".join(sorted(declared)) or "none: the record has no 'tools'"
            raise LineError(f"{where} calls {name!r}, which the record does not declare (its tools: {known})")
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as exc:
                raise LineError(f"{where} ({name}): the arguments are not valid JSON ({exc.msg})") from None
        if not isinstance(arguments, dict):
            raise LineError(f"{where} ({name}): the arguments must be a JSON object, not {_json_type(arguments)}")
        calls.append({"type": "function", "function": {"name": name, "arguments": arguments}})
    return tuple(calls)


def _content_text(content, index: int, role: str) -> str:
    """A message's text: a string, or OpenAI's list of parts ([{"type": "text", "text": ...}]) joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(isinstance(part, dict) for part in content):
        kinds = {part.get("type") for part in content}
        if kinds != {"text"} or not all(isinstance(part.get("text"), str) for part in content):
            other = ", ".join(sorted(str(kind) for kind in kinds - {"text"})) or "a text part without text"
            raise LineError(f"message {index} ({role}) has content parts lora-tui cannot train on ({other}): text only")
        return "".join(part["text"] for part in content)
    raise LineError(f"message {index} ({role}) needs 'content' as a string (or a list of text parts)")


def _preference(value: dict) -> tuple[tuple[dict, ...], str, str]:
    """(prompt messages, chosen answer, rejected answer) of a preference pair."""
    prompt = _prompt(value)
    chosen, rejected = _answer(value, "chosen"), _answer(value, "rejected")
    if chosen.strip() == rejected.strip():
        raise LineError("'chosen' and 'rejected' are the same answer: the pair prefers nothing")
    return prompt, chosen, rejected


def _prompt(value: dict) -> tuple[dict, ...]:
    """A prompt to answer: a string, or messages that end where the answer begins; with its "system" field."""
    raw_prompt = value.get("prompt")
    if raw_prompt is None:
        raise LineError("missing field 'prompt'")
    if isinstance(raw_prompt, list):
        prompt = _messages(raw_prompt, "prompt", needs_answer=False)
    else:
        prompt = ({"role": "user", "content": _string_field(value, "prompt")},)
    system = _string_field(value, "system", required=False)
    if system.strip():
        if prompt[0]["role"] == "system":
            raise LineError("a 'system' field and a system message in the prompt: keep one")
        prompt = ({"role": "system", "content": system}, *prompt)
    if prompt[-1]["role"] == "assistant":
        raise LineError("the prompt ends on an assistant turn; it must end where the answers begin")
    return prompt


def _grpo_answer(value: dict) -> str | None:
    """A GRPO prompt's reference answer: text, or a number (as written); absent or null: none."""
    raw = value.get("answer")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise LineError(f"field 'answer' must be a string or a number, not {_json_type(raw)}")
    if isinstance(raw, str) and not raw.strip():
        raise LineError("field 'answer' is empty (leave it out for a prompt with no answer)")
    return raw if isinstance(raw, str) else json.dumps(raw)


def _answer(value: dict, key: str) -> str:
    """A preference answer: a string, or a list of one assistant message."""
    raw = value.get(key)
    if raw is None:
        raise LineError(f"missing field {key!r}")
    if isinstance(raw, list):
        messages = _messages(raw, key)
        if len(messages) != 1 or messages[0]["role"] != "assistant":
            raise LineError(f"{key!r} must be a string or one assistant message")
        return messages[0]["content"]
    return _string_field(value, key)


def detect_format(value) -> str:
    if isinstance(value, list):
        return "messages"
    if not isinstance(value, dict):
        raise LineError(f"expected a JSON object or array, not {_json_type(value)}")
    if "messages" in value:
        return "chat"
    if "chosen" in value or "rejected" in value:
        return "preference"
    if "prompt" in value and "completion" not in value:
        return "grpo"
    if "prompt" in value or "completion" in value:
        return "completion"
    if "instruction" in value or "output" in value:
        return "instruction"
    if "text" in value:
        return "text"
    keys = ", ".join(sorted(value)) or "none"
    proposal = propose_columns(list(value), [value])
    hint = f"; map them with --columns {format_columns(proposal)}" if proposal else ""
    raise LineError(
        f"unknown format (keys: {keys}); expected messages, text, prompt/completion, instruction/output "
        f"prompt/chosen/rejected or prompt/answer (GRPO){hint}"
    )


def to_record(line: int, value, kind: str, place: str = "") -> Record:
    if kind == "messages":
        return Record(line, messages=_messages(value), place=place)
    if kind == "chat":
        tools = _tools(value.get("tools"))
        return Record(line, messages=_messages(value["messages"], tools=tools), tools=tools, place=place)
    if kind == "text":
        return Record(line, text=_string_field(value, "text"), place=place)
    if kind == "preference":
        prompt, chosen, rejected = _preference(value)
        return Record(
            line, messages=(*prompt, {"role": "assistant", "content": chosen}), rejected=rejected, place=place
        )
    if kind == "grpo":
        return Record(line, messages=_prompt(value), prompt_only=True, answer=_grpo_answer(value), place=place)
    if kind == "completion":
        prompt, completion = _string_field(value, "prompt"), _string_field(value, "completion")
        turns = ({"role": "user", "content": prompt}, {"role": "assistant", "content": completion})
        return Record(line, messages=_with_system(value, turns), place=place)
    if kind == "instruction":
        instruction, output = _string_field(value, "instruction"), _string_field(value, "output")
        extra = _string_field(value, "input", required=False)
        prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        turns = ({"role": "user", "content": prompt}, {"role": "assistant", "content": output})
        return Record(line, messages=_with_system(value, turns), place=place)
    raise AssertionError(kind)


def _with_system(value: dict, messages: tuple[dict, ...]) -> tuple[dict, ...]:
    """A record's own "system" field (a column mapped to system) as the conversation's first message."""
    system = _string_field(value, "system", required=False)
    if not system.strip():
        return messages
    if messages[0]["role"] == "system":
        raise LineError("a 'system' field and a system message in the conversation: keep one")
    return ({"role": "system", "content": system}, *messages)


# Reading files -------------------------------------------------------------------


@dataclass
class ReadState:
    """What a pass over one file has seen so far."""

    path: Path
    format: str | None = None
    records: int = 0
    lines: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    source: str = "jsonl"  # or "text", or a table's kind: "parquet", "csv", ...
    columns: dict[str, str] | None = None  # the mapping the records were read through

    def problem(self, line: int, message: str, place: str = "") -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED_ERRORS:
            self.problems.append(Problem(line, message, place=place))


@dataclass(frozen=True)
class Item:
    """One non-blank line or row: its parsed value (mapped through the columns), and the line as it was."""

    number: int
    value: object
    place: str = ""
    raw: str | None = None  # a JSONL line's own text, kept so rewriting it changes nothing else


class ColumnsNeeded(UserError):
    """A table whose column names name no format: it needs a mapping (the app asks for one)."""

    def __init__(self, path: Path, names: list[str], proposal: dict[str, str] | None) -> None:
        hint = f"; map them, e.g. --columns {format_columns(proposal)}" if proposal else "; map them with --columns"
        super().__init__(
            f"{path}: the columns ({', '.join(names) or 'none'}) name no format lora-tui reads "
            f"(messages, text, prompt/completion, instruction/output, prompt/chosen/rejected){hint}."
        )
        self.path, self.names, self.proposal = path, names, proposal


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            yield number, raw.rstrip(b"\r\n")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(f"invalid UTF-8 at byte {exc.start + 1}") from None


def iter_items(path: Path, state: ReadState, columns: dict[str, str] | None = None) -> Iterator[Item]:
    """Each line or row of one file (or table) that parses, mapped through `columns`; problems go to `state`."""
    path = Path(path)
    if columns:
        check_names_a_format(columns)
    kind = table_kind(path)
    if kind is not None:
        yield from _table_items(path, state, kind, columns)
        return
    plain_text = path.suffix.lower() == ".txt"
    state.source = "text" if plain_text else "jsonl"
    state.columns = columns
    for number, raw in read_lines(path):
        state.lines = number
        if not raw.strip():
            continue
        try:
            text = _decode(raw)
            value = text if plain_text else _json_value(text, columns)
        except LineError as exc:
            state.problem(number, str(exc))
            continue
        yield Item(number, value, raw=text)


def _json_value(text: str, columns: dict[str, str] | None):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if columns and isinstance(value, dict):
        try:
            return map_values(value, columns)
        except ValueProblem as exc:
            raise LineError(str(exc).replace("column", "field", 1)) from None
    return value


def _table_items(path: Path, state: ReadState, kind: str, columns: dict[str, str] | None) -> Iterator[Item]:
    state.source = kind
    names = table_columns(path)
    mapping = columns or identity_columns(names)
    if not mapping:
        raise ColumnsNeeded(path, names, propose_columns(names, [row.values for row in sample_rows(path, 20)]))
    check_columns_exist(mapping, names, path)
    state.columns = mapping
    for row in iter_rows(path):
        state.lines = row.number
        try:
            if row.problem:
                raise LineError(row.problem)
            if not isinstance(row.values, dict):
                raise LineError(f"expected a record (an object), not {_json_type(row.values)}")
            value = map_values(row.values, mapping)
        except (LineError, ValueProblem) as exc:
            state.problem(row.number, str(exc), row.place)
            continue
        yield Item(row.number, value, row.place)


def iter_records(path: Path, state: ReadState | None = None, columns: dict[str, str] | None = None) -> Iterator[Record]:
    """Yield each valid record of one file; problems go to `state`."""
    path = Path(path)
    state = state or ReadState(path)
    for item in iter_items(path, state, columns):
        try:
            record = _to_record(item, state)
        except LineError as exc:
            state.problem(item.number, str(exc), item.place)
            continue
        state.records += 1
        yield record


def record_at(path: Path, line: int, columns: dict[str, str] | None = None) -> Record:
    """The record on line `line` (a table's row number) of a file, or of a dataset folder's train file."""
    files = dataset_files(Path(path))
    file = files.get("train", next(iter(files.values())))
    state = ReadState(file)
    for record in iter_records(file, state, columns):
        if record.line == line:
            return record
    problem = next((p for p in state.problems if p.line == line), None)
    if problem is not None:
        raise UserError(f"{file}, {problem.where}: {problem.message}.")
    raise UserError(f"{file} has no record on line {line}.")


def _to_record(item: Item, state: ReadState) -> Record:
    if state.source == "text":
        state.format = "plain-text"
        return Record(item.number, text=item.value)
    kind = detect_format(item.value)
    if state.format is None:
        state.format = kind
    elif kind != state.format:
        raise LineError(f"mixed formats: this {'row' if item.place else 'line'} is {kind}, the file is {state.format}")
    return to_record(item.number, item.value, kind, item.place)


def record_lines(
    path: Path, columns: dict[str, str] | None = None, state: ReadState | None = None
) -> Iterator[tuple[Record, str]]:
    """Each valid record with its JSONL line: a JSONL file's own line, or the mapped row written as JSON.
    Any problem refuses (the caller is about to write the records elsewhere)."""
    state = state or ReadState(Path(path))
    for item in iter_items(path, state, columns):
        if state.problems:
            break
        try:
            record = _to_record(item, state)
        except LineError as exc:
            state.problem(item.number, str(exc), item.place)
            break
        if state.source == "text":
            line = json.dumps({"text": record.text}, ensure_ascii=False)
        elif item.raw is not None and not columns:
            line = item.raw
        else:
            line = json.dumps(item.value, ensure_ascii=False)
        yield record, line
    if state.problems:
        first = state.problems[0]
        raise UserError(f"{path}, {first.where}: {first.message}.")


# Whole datasets ------------------------------------------------------------------

SPLIT_NAMES = {
    "train": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "test": "test",
}
DATA_SUFFIXES = (".jsonl", *TABLE_SUFFIXES)


def dataset_files(path: Path) -> dict[str, Path]:
    """The files of a dataset by split: one file (as 'train'); a folder's train/valid/test files (mlx-lm's
    layout, in any format read here); a `datasets` save_to_disk folder; a folder of table shards; or a
    Hub dataset id whose snapshot is in the Hugging Face cache."""
    path = Path(path).expanduser()
    if not path.exists():
        snapshot = hub_dataset_snapshot(str(path))
        if snapshot is None:
            raise UserError(f"{path}: no such file or folder.")
        path = snapshot
    if not path.is_dir():
        check_readable(path)
        return {"train": path}
    found = _folder_splits(path)
    files = {split: found[split] for split in SPLITS if split in found}
    if "train" not in files:
        raise UserError(
            f"{path}: the folder has no train.jsonl (expected train.jsonl, valid.jsonl, test.jsonl; the same "
            "in Parquet, CSV, TSV or JSON; a datasets save_to_disk folder; or Parquet shards)."
        )
    return files


def looks_like_dataset_folder(folder: Path) -> bool:
    """Whether a folder is a dataset (rather than a folder of datasets), judged from its own entries."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    names = {entry.name for entry in entries}
    if {"dataset_dict.json", "state.json"} & names:
        return True
    try:
        return bool(_named_splits(folder)) or table_kind(folder) is not None
    except UserError:
        return True  # a table folder with something wrong: opening it says what


def _folder_splits(folder: Path) -> dict[str, Path]:
    if (folder / "dataset_dict.json").is_file():
        return _dataset_dict_splits(folder)
    if (folder / "state.json").is_file() or (table_kind(folder) and not _named_splits(folder)):
        return {"train": folder}
    named = _named_splits(folder)
    return named or _nested_splits(folder)


def _dataset_dict_splits(folder: Path) -> dict[str, Path]:
    try:
        names = json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise UserError(f"{folder / 'dataset_dict.json'}: not a dataset_dict.json written by datasets.") from None
    splits = {}
    for name in names:
        split = SPLIT_NAMES.get(str(name).lower())
        if split and split not in splits and (folder / name).is_dir():
            splits[split] = folder / name
    return splits


def _named_splits(folder: Path) -> dict[str, Path]:
    """train.jsonl, valid.jsonl, test.jsonl (or train.parquet, validation.csv, ...) at the top of the folder."""
    splits = {}
    for file in sorted(folder.iterdir()):
        split = SPLIT_NAMES.get(file.stem.lower())
        if split and file.is_file() and file.suffix.lower() in DATA_SUFFIXES:
            splits.setdefault(split, file)
    return splits


def _nested_splits(folder: Path) -> dict[str, Path]:
    """A Hub snapshot's data files (data/train-00000-of-00002.parquet, default/test/0000.parquet, ...) by the
    split their path names."""
    found: dict[str, list[Path]] = {}
    for file in sorted(folder.rglob("*")):
        relative = file.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not file.is_file():
            continue
        if file.suffix.lower() not in DATA_SUFFIXES:
            continue
        words = re.split(r"[-_./]", str(relative.with_suffix("")).lower())
        split = next((SPLIT_NAMES[word] for word in words if word in SPLIT_NAMES), None)
        if split:
            found.setdefault(split, []).append(file)
    return {split: _one_table(folder, files) for split, files in found.items()}


def _one_table(folder: Path, files: list[Path]) -> Path:
    """The path that reads `files` as one table: the file, its shard set's first file, or their folder."""
    if len(files) == 1:
        return files[0]
    parent = files[0].parent
    siblings = [p for p in parent.iterdir() if p.is_file() and p.suffix.lower() in DATA_SUFFIXES]
    if all(f.parent == parent for f in files) and len(siblings) == len(files):
        return parent
    if sorted(table_shards(files[0])) == sorted(files):
        return files[0]
    shown = ", ".join(str(f.relative_to(folder)) for f in files[:4])
    raise UserError(f"{folder}: cannot tell which of these files make one split: {shown}.")


def hub_dataset_snapshot(name: str) -> Path | None:
    """The cached snapshot of a Hub dataset id ("owner/name"), offline; None when it is not an id or not cached."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, repo_type="dataset", local_files_only=True))
    except Exception:  # not in the cache, or not a valid id: either way, no such dataset here
        return None


def check_readable(path: Path) -> None:
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty.")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".arrow"):
        return  # the table readers check their own marks
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if b"\x00" in head:
        what = {".csv": "CSV", ".tsv": "TSV"}.get(suffix, "JSONL or text")
        raise UserError(f"{path}: this is a binary file, not {what}.")
    if suffix not in (".txt", ".csv", ".tsv"):
        first = next((line for line in head.lstrip(b"\xef\xbb\xbf").splitlines() if line.strip()), b"")
        if first and first.lstrip()[:1] not in (b"{", b"["):
            raise UserError(
                f"{path}: line 1 is not JSON; lora-tui reads JSONL (one JSON object per line), JSON arrays, "
                "Parquet, CSV, TSV or .txt files."
            )


def load_records(path: Path, columns: dict[str, str] | None = None) -> list[Record]:
    """All records of a valid file; the first problem is a UserError naming its line."""
    state = ReadState(Path(path))
    records = list(iter_records(path, state, columns))
    if state.problems:
        first = state.problems[0]
        raise UserError(f"{path}, {first.where}: {first.message}.")
    return records


# Browsing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One non-blank line (or row) of a dataset, as the record viewer shows it."""

    file: str  # the file's name
    line: int
    record: Record | None
    problem: str | None = None
    raw: str = ""  # the line itself, kept only when it has a problem
    place: str = ""

    @property
    def where(self) -> str:
        return self.place or f"line {self.line}"


def browse_entries(path: Path, columns: dict[str, str] | None = None) -> list[Entry]:
    """Every record and every reported bad line of a dataset, file by file, in line order."""
    entries: list[Entry] = []
    for file in dataset_files(Path(path)).values():
        state = ReadState(file)
        records = {record.line: record for record in iter_records(file, state, columns)}
        problems = {p.line: p for p in state.problems}
        raw_lines = (
            {n: raw.decode("utf-8", "replace") for n, raw in read_lines(file) if n in problems}
            if problems and state.source in ("jsonl", "text")
            else {}
        )
        for line in sorted(records.keys() | problems.keys()):
            record, problem = records.get(line), problems.get(line)
            place = record.place if record else problem.place
            entries.append(
                Entry(file.name, line, record, problem.message if problem else None, raw_lines.get(line, ""), place)
            )
    return entries


# Adding examples -----------------------------------------------------------------


def append_chat_example(path: Path, messages: list[dict]) -> int:
    """Append one conversation to a chat-format JSONL file; return its line number.

    The conversation is validated like any dataset line, and the file must be
    empty, missing or already in chat format. The file is rewritten through a
    temp file, so a failure leaves it as it was.
    """
    record = {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}
    return _append_record(path, record, "chat", "a valid training example")


def append_preference_pair(path: Path, prompt: list[dict], chosen: str, rejected: str) -> int:
    """Append one preference pair ({"prompt": messages, "chosen", "rejected"}) to a preference JSONL file;
    return its line number. Validated and written like `append_chat_example`."""
    record = {
        "prompt": [{"role": m["role"], "content": m["content"]} for m in prompt],
        "chosen": chosen,
        "rejected": rejected,
    }
    return _append_record(path, record, "preference", "a valid preference pair")


def _append_record(path: Path, record: dict, kind: str, what: str) -> int:
    path = Path(path).expanduser()
    try:
        to_record(0, record, kind)
    except LineError as exc:
        raise UserError(f"This is not {what}: {exc}.") from None
    existing = path.read_bytes() if path.is_file() else b""
    if existing.strip():
        state = ReadState(path)
        for _ in iter_records(path, state):  # reads every line, so a bad file is refused
            pass
        if state.format != kind or state.problems:
            why = state.problems[0].message if state.problems else f"it is in {state.format} format"
            raise UserError(f"{path}: will not append a {kind} record ({why}).")
    if existing and not existing.endswith(b"\n"):
        existing += b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, "wb") as handle:
        handle.write(existing)
        handle.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    return existing.count(b"\n") + 1
