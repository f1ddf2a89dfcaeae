"""Datasets: read every common format line by line, validate, normalise.

Formats, detected per file from its first readable record:
- chat:        {"messages": [{"role": ..., "content": ...}, ...]}
- messages:    [{"role": ..., "content": ...}, ...]   (Apple's adapter toolkit)
- text:        {"text": ...}
- completion:  {"prompt": ..., "completion": ...}
- instruction: {"instruction": ..., "input"?: ..., "output": ...}
- preference:  {"prompt": ..., "chosen": ..., "rejected": ..., "system"?: ...}: the prompt a string or a
               list of messages, each answer a string or a one-message assistant list (TRL's shapes)
- plain text:  a .txt file, one example per line
A folder holding train.jsonl (and valid.jsonl, test.jsonl) is mlx-lm's layout.

Every record becomes a `Record`: either a conversation (whose last assistant
turn is the response, everything before it the prompt) or a plain text. A
preference pair is the conversation that ends on the chosen answer, with the
rejected answer beside it.
Files are streamed: nothing reads a whole file into memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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

    @property
    def is_chat(self) -> bool:
        return self.text is None

    @property
    def is_preference(self) -> bool:
        return self.rejected is not None

    @property
    def response(self) -> str:
        """The last assistant turn (empty for plain text)."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "assistant"), "")

    @property
    def prompt_messages(self) -> tuple[dict, ...]:
        """The conversation up to (not including) the last assistant turn."""
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")
        return self.messages[:last]

    def plain_text(self) -> str:
        """All the record's words, for lint and PII scanning."""
        if self.text is not None:
            return self.text
        return "\n".join([m["content"] for m in self.messages] + ([self.rejected] if self.is_preference else []))

    def to_json(self) -> dict:
        if self.is_preference:
            return {"prompt": list(self.prompt_messages), "chosen": self.response, "rejected": self.rejected}
        return {"text": self.text} if self.text is not None else {"messages": list(self.messages)}


@dataclass(frozen=True)
class Problem:
    line: int
    message: str
    file: str | None = None

    def to_json(self) -> dict:
        data = {"line": self.line or None, "message": self.message}  # 0: the dataset as a whole, no one line
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
    return _messages(raw, needs_answer=False)


def _messages(raw, name: str = "messages", needs_answer: bool = True) -> tuple[dict, ...]:
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
        content = _content_text(message.get("content"), index, role)
        if not content.strip() and role != "tool":
            raise LineError(f"message {index} ({role}) has empty content")
        messages.append({"role": role, "content": content})
    if needs_answer and not any(m["role"] == "assistant" for m in messages):
        raise LineError("the conversation has no assistant turn")
    return tuple(messages)


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
    chosen, rejected = _answer(value, "chosen"), _answer(value, "rejected")
    if chosen.strip() == rejected.strip():
        raise LineError("'chosen' and 'rejected' are the same answer: the pair prefers nothing")
    return prompt, chosen, rejected


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
    if "prompt" in value or "completion" in value:
        return "completion"
    if "instruction" in value or "output" in value:
        return "instruction"
    if "text" in value:
        return "text"
    keys = ", ".join(sorted(value)) or "none"
    raise LineError(
        f"unknown format (keys: {keys}); expected messages, text, prompt/completion, instruction/output "
        "or prompt/chosen/rejected"
    )


def to_record(line: int, value, kind: str) -> Record:
    if kind == "messages":
        return Record(line, messages=_messages(value))
    if kind == "chat":
        return Record(line, messages=_messages(value["messages"]))
    if kind == "text":
        return Record(line, text=_string_field(value, "text"))
    if kind == "preference":
        prompt, chosen, rejected = _preference(value)
        return Record(line, messages=(*prompt, {"role": "assistant", "content": chosen}), rejected=rejected)
    if kind == "completion":
        prompt, completion = _string_field(value, "prompt"), _string_field(value, "completion")
        return Record(
            line, messages=({"role": "user", "content": prompt}, {"role": "assistant", "content": completion})
        )
    if kind == "instruction":
        instruction, output = _string_field(value, "instruction"), _string_field(value, "output")
        extra = _string_field(value, "input", required=False)
        prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        return Record(line, messages=({"role": "user", "content": prompt}, {"role": "assistant", "content": output}))
    raise AssertionError(kind)


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

    def problem(self, line: int, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED_ERRORS:
            self.problems.append(Problem(line, message))


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


def iter_records(path: Path, state: ReadState | None = None) -> Iterator[Record]:
    """Yield each valid record of one file; problems go to `state`."""
    path = Path(path)
    state = state or ReadState(path)
    plain_text = path.suffix.lower() == ".txt"
    if plain_text:
        state.format = "plain-text"
    for number, raw in read_lines(path):
        state.lines = number
        if not raw.strip():
            continue
        try:
            text = _decode(raw)
            record = Record(number, text=text) if plain_text else _parse_json_line(number, text, state)
        except LineError as exc:
            state.problem(number, str(exc))
            continue
        state.records += 1
        yield record


def _parse_json_line(number: int, text: str, state: ReadState) -> Record:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    kind = detect_format(value)
    if state.format is None:
        state.format = kind
    elif kind != state.format:
        raise LineError(f"mixed formats: this line is {kind}, the file is {state.format}")
    return to_record(number, value, kind)


# Whole datasets ------------------------------------------------------------------


def dataset_files(path: Path) -> dict[str, Path]:
    """The files of a dataset: one file (as 'train'), or a folder's train/valid/test.jsonl."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path}: no such file or folder.")
    if path.is_dir():
        files = {split: path / f"{split}.jsonl" for split in SPLITS if (path / f"{split}.jsonl").is_file()}
        if "train" not in files:
            raise UserError(f"{path}: the folder has no train.jsonl (expected train.jsonl, valid.jsonl, test.jsonl).")
        return files
    check_readable(path)
    return {"train": path}


def check_readable(path: Path) -> None:
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty.")
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if b"\x00" in head:
        raise UserError(f"{path}: this is a binary file, not JSONL or text.")
    if path.suffix.lower() != ".txt":
        first = next((line for line in head.lstrip(b"\xef\xbb\xbf").splitlines() if line.strip()), b"")
        if first and first.lstrip()[:1] not in (b"{", b"["):
            raise UserError(
                f"{path}: line 1 is not JSON; lora-tui reads JSONL (one JSON object per line) or .txt files."
            )


def load_records(path: Path) -> list[Record]:
    """All records of a valid file; the first problem is a UserError naming its line."""
    state = ReadState(Path(path))
    records = list(iter_records(path, state))
    if state.problems:
        first = state.problems[0]
        raise UserError(f"{path}, line {first.line}: {first.message}.")
    return records


# Browsing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One non-blank line of a dataset, as the record viewer shows it."""

    file: str  # the file's name
    line: int
    record: Record | None
    problem: str | None = None
    raw: str = ""  # the line itself, kept only when it has a problem


def browse_entries(path: Path) -> list[Entry]:
    """Every record and every reported bad line of a dataset, file by file, in line order."""
    entries: list[Entry] = []
    for file in dataset_files(Path(path)).values():
        state = ReadState(file)
        records = {record.line: record for record in iter_records(file, state)}
        problems = {p.line: p.message for p in state.problems}
        raw_lines = (
            {n: raw.decode("utf-8", "replace") for n, raw in read_lines(file) if n in problems} if problems else {}
        )
        for line in sorted(records.keys() | problems.keys()):
            entries.append(Entry(file.name, line, records.get(line), problems.get(line), raw_lines.get(line, "")))
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
