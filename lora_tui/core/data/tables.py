"""Datasets kept as tables: Parquet, Arrow (`datasets`' save_to_disk), CSV/TSV and JSON arrays.

Each is read a batch at a time, so a file of any size streams as JSONL does:
- Parquet and Arrow through pyarrow, one record batch at a time (Parquet by row group);
- CSV and TSV through the standard library's csv reader: CSV has no types (every value is
  text, which is what training reads), and the reader gives the line each row starts on,
  even when a quoted value spans lines;
- a JSON array element by element with the standard decoder, so each element has its line.

A table is one file, or the shards of one split: a folder of table files, or a file named
like a shard (`train-00000-of-00003.parquet`) whose siblings of the same set follow it.
Rows are numbered from 1 across all the shards of a split.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.units import counted

TABLE_SUFFIXES = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".tsv": "tsv", ".json": "json"}
SHARD_NAME = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})(?P<suffix>\.\w+)$")
BATCH_ROWS = 1024
JSON_CHUNK = 1 << 20
PARQUET_MAGIC = b"PAR1"
# What pyarrow raises on a damaged file is no one family (ArrowInvalid, OSError, a UnicodeDecodeError from its
# metadata, an IndexError from a bad offset): each means the same to the user.
CORRUPT_FILE_ERRORS = (ArithmeticError, LookupError, OSError, ValueError, TypeError, EOFError, RuntimeError)
# csv's default limit is 128 KiB a value; a long document in one cell is ordinary in training data.
csv.field_size_limit(1 << 30)


@dataclass(frozen=True)
class Row:
    number: int  # 1-based over the whole split
    values: dict
    line: int | None = None  # the file line the row starts on (CSV, JSON)
    shard: str | None = None  # the file it came from, when a split has several
    problem: str | None = None  # what is wrong with the row as a whole (a CSV row of the wrong width)

    @property
    def place(self) -> str:
        """How a message names the row: "row 3 (line 4)", "row 12 (train-00001-of-00002.parquet)"."""
        detail = f"line {self.line}" if self.line is not None else self.shard
        return f"row {self.number}" + (f" ({detail})" if detail else "")


def table_kind(path: Path) -> str | None:
    """ "parquet", "arrow", "csv", "tsv" or "json" for a table file or a folder of them; None otherwise
    (JSONL, text, a mlx-lm folder)."""
    path = Path(path)
    if path.is_dir():
        shards = _folder_shards(path)
        return table_kind(shards[0]) if shards else None
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind == "json" and not _is_json_array(path):
        return None  # a .json file holding one object per line is JSONL
    return kind


def _is_json_array(path: Path) -> bool:
    """A .json file is an array of records when it opens with '[' and its first line is not a whole value
    (a JSONL line may itself be an array: Apple's messages format)."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(JSON_CHUNK).lstrip(b"\xef\xbb\xbf").strip()
            more = bool(handle.read(1).strip())
    except OSError:
        return False
    if not first.startswith(b"["):
        return False
    try:
        value = json.loads(first)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return True  # '[' alone, or the first of several lines of one array
    # A whole array on one line: records, unless its elements are chat messages (a JSONL line of Apple's format).
    return not more and not all(isinstance(item, dict) and "role" in item for item in value)


def table_shards(path: Path) -> list[Path]:
    """The files of one table, in order."""
    path = Path(path)
    if path.is_dir():
        shards = _folder_shards(path)
        if not shards:
            raise UserError(f"{path}: the folder holds no Parquet, Arrow, CSV or JSON files.")
        return shards
    match = SHARD_NAME.match(path.name)
    if not match:
        return [path]
    siblings = sorted(
        p
        for p in path.parent.iterdir()
        if (m := SHARD_NAME.match(p.name))
        and (m["stem"], m["count"], m["suffix"]) == (match["stem"], match["count"], match["suffix"])
    )
    if len(siblings) != int(match["count"]):
        raise UserError(
            f"{path}: {len(siblings)} of the {int(match['count'])} shards of {match['stem']} are here; "
            "the others are missing."
        )
    return siblings


def _folder_shards(folder: Path) -> list[Path]:
    """A save_to_disk folder's Arrow files (in state.json's order), or a folder's table files of one kind."""
    state = folder / "state.json"
    if state.is_file():
        try:
            names = [item["filename"] for item in json.loads(state.read_text(encoding="utf-8"))["_data_files"]]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            raise UserError(f"{state}: not a state.json written by datasets' save_to_disk.") from None
        return [folder / name for name in names]
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".parquet", ".arrow"))
    kinds = {p.suffix.lower() for p in files}
    if len(kinds) > 1:
        raise UserError(f"{folder}: the folder mixes Parquet and Arrow files; keep one table per folder.")
    return files


def table_columns(path: Path) -> list[str]:
    """The table's column names (a JSON array's: the keys of its first record)."""
    first = table_shards(path)[0]
    kind = table_kind(first)
    if kind in ("parquet", "arrow"):
        return list(_arrow_schema(first, kind).names)
    if kind in ("csv", "tsv"):
        try:
            with _open_text(first) as handle:
                return next(csv.reader(handle, delimiter="\t" if kind == "tsv" else ",", strict=True), [])
        except UnicodeDecodeError as exc:
            raise UserError(f"{first}: not UTF-8 text (byte {exc.start + 1} of a block); save it as UTF-8.") from None
        except csv.Error as exc:
            raise UserError(f"{first}, line 1: not a valid {kind.upper()} header ({exc}).") from None
    row = next(iter_rows(path), None)
    if row is not None and not isinstance(row.values, dict):
        raise UserError(f"{first}, line {row.line}: the array must hold records (JSON objects), one per element.")
    return list(row.values) if row else []


def iter_rows(path: Path) -> Iterator[Row]:
    """Every row of the table, shard after shard; a file that cannot be read is one UserError naming it."""
    shards = table_shards(path)
    several = len(shards) > 1
    number = 0
    for shard in shards:
        kind = table_kind(shard)
        for values, line in _READERS[kind](shard):
            number += 1
            shard_name = shard.name if several and line is None else None
            if isinstance(values, RowProblem):
                yield Row(number, {}, line, shard_name, problem=str(values))
            else:
                yield Row(number, values, line, shard_name)


def sample_rows(path: Path, count: int) -> list[Row]:
    rows = []
    for row in iter_rows(path):
        rows.append(row)
        if len(rows) == count:
            break
    return rows


# Parquet and Arrow -------------------------------------------------------------------


def _arrow_schema(path: Path, kind: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if kind == "parquet":
            _check_parquet_marks(path)
            return pq.ParquetFile(path).schema_arrow
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_stream(source).schema
    except CORRUPT_FILE_ERRORS as exc:
        raise _unreadable(path, kind, exc) from None


def _check_parquet_marks(path: Path) -> None:
    """A Parquet file starts and ends with PAR1; without them it is another kind of file, or cut short."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(4)
        handle.seek(max(size - 4, 0))
        tail = handle.read(4)
    if head != PARQUET_MAGIC:
        raise UserError(f"{path}: not a Parquet file (it does not begin with Parquet's PAR1 mark).")
    if tail != PARQUET_MAGIC:
        raise UserError(f"{path}: the Parquet file is cut short (its footer is missing); copy it again.")


def _unreadable(path: Path, kind: str, exc: Exception) -> UserError:
    what = "Parquet" if kind == "parquet" else "Arrow (datasets' save_to_disk)"
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UserError(f"{path}: not a readable {what} file ({reason}).")


def _parquet_rows(path: Path) -> Iterator[tuple[dict, None]]:
    import pyarrow.parquet as pq

    _check_parquet_marks(path)
    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            for values in batch.to_pylist():
                yield values, None
    except CORRUPT_FILE_ERRORS as exc:
        raise _unreadable(path, "parquet", exc) from None


def _arrow_rows(path: Path) -> Iterator[tuple[dict, None]]:
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            for batch in pa.ipc.open_stream(source):
                for values in batch.to_pylist():
                    yield values, None
    except CORRUPT_FILE_ERRORS as exc:
        raise _unreadable(path, "arrow", exc) from None


# CSV and TSV --------------------------------------------------------------------------


def _open_text(path: Path):
    return open(path, encoding="utf-8-sig", newline="")


def _csv_rows(path: Path, delimiter: str = ",") -> Iterator[tuple[dict, int]]:
    what = "TSV" if delimiter == "\t" else "CSV"
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle, delimiter=delimiter, strict=True)
            header = next(reader, None)
            if not header:
                return
            if len(set(header)) != len(header):
                twice = sorted({name for name in header if header.count(name) > 1})
                raise UserError(f"{path}, line 1: the header names a column twice ({', '.join(twice)}).")
            start = reader.line_num + 1
            for cells in reader:
                line, start = start, reader.line_num + 1
                if not any(cell.strip() for cell in cells):
                    continue  # a blank line
                if len(cells) != len(header):
                    yield RowProblem(f"{counted(len(cells), 'value')}; the header has {len(header)} columns"), line
                else:
                    yield dict(zip(header, cells, strict=True)), line
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start + 1} of a block); save it as UTF-8.") from None
    except csv.Error as exc:
        raise UserError(f"{path}, line {reader.line_num}: not valid {what} ({exc}).") from None


class RowProblem(str):
    """What a reader yields in place of a row's values when the row itself is malformed."""


def _tsv_rows(path: Path) -> Iterator[tuple[dict, int]]:
    return _csv_rows(path, "\t")


# JSON arrays --------------------------------------------------------------------------


def _json_array_rows(path: Path) -> Iterator[tuple[object, int]]:
    """Each element of a JSON array, with the line it starts on, reading a megabyte at a time."""
    reader = _JsonArrayReader(path)
    with open(path, encoding="utf-8-sig") as handle:
        try:
            yield from reader.elements(handle)
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text (byte {exc.start + 1} of a block); save it as UTF-8.") from None


class _JsonArrayReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.decoder = json.JSONDecoder()
        self.buffer = ""
        self.position = 0
        self.line = 1
        self.ended = False

    def elements(self, handle: io.TextIOBase) -> Iterator[tuple[object, int]]:
        self.handle = handle
        if self._next_char() != "[":
            raise UserError(f"{self.path}, line {self.line}: not a JSON array (it must begin with '[').")
        self.position += 1
        first = True
        while True:
            char = self._next_char()
            if char == "]":
                return
            if not first:
                if char != ",":
                    raise self._broken("expected ',' or ']' between records")
                self.position += 1
                self._next_char()
            first = False
            line = self.line
            yield self._value(), line

    def _next_char(self) -> str:
        """Skip whitespace, counting lines; the next character, or '' at the end of the file."""
        while True:
            while self.position < len(self.buffer) and self.buffer[self.position] in " \t\r\n":
                if self.buffer[self.position] == "\n":
                    self.line += 1
                self.position += 1
            if self.position < len(self.buffer) or not self._read_more():
                return self.buffer[self.position : self.position + 1]

    def _read_more(self) -> bool:
        if self.ended:
            return False
        chunk = self.handle.read(JSON_CHUNK)
        self.buffer = self.buffer[self.position :] + chunk
        self.position = 0
        self.ended = not chunk
        return bool(chunk)

    def _value(self):
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buffer, self.position)
            except json.JSONDecodeError as exc:
                if self._read_more():
                    continue
                cut_short = exc.pos >= len(self.buffer.rstrip())
                line = self.line + self.buffer.count("\n", self.position, exc.pos)
                why = "the file ends inside a record: it may be cut short" if cut_short else exc.msg
                raise self._broken(why, line) from None
            if end == len(self.buffer) and self._read_more():
                continue  # a number cut at the end of the buffer may go on
            self.line += self.buffer.count("\n", self.position, end)
            self.position = end
            return value

    def _broken(self, why: str, line: int | None = None) -> UserError:
        if self.ended and self.position >= len(self.buffer):
            why = "the array is not closed: the file may be cut short"
        return UserError(f"{self.path}, line {line or self.line}: not valid JSON ({why}).")


_READERS = {
    "parquet": _parquet_rows,
    "arrow": _arrow_rows,
    "csv": _csv_rows,
    "tsv": _tsv_rows,
    "json": _json_array_rows,
}
