"""`data check`: validation, lint and token budget of a dataset in one pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lora_tui.core.data.columns import format_columns
from lora_tui.core.data.lint import Linter, LintWarning
from lora_tui.core.data.records import Problem, ReadState, dataset_files, iter_records
from lora_tui.core.data.rendering import system_prompt_dropped
from lora_tui.core.data.tokens import TokenCounter, TokenStats, pair_length, token_stats
from lora_tui.core.errors import UserError
from lora_tui.core.units import counted

DEFAULT_MAX_SEQ_LENGTH = 2048
SYSTEM_DROPPED = (
    "the model's chat template has no place for this record's system prompt, so training leaves it out "
    "(and from every record; `--show-mask LINE` shows what the model reads)"
)


@dataclass
class DatasetReport:
    path: Path
    format: str | None
    records: int
    valid_records: int
    errors: list[Problem]
    error_count: int
    warnings: list[LintWarning]
    tokens: TokenStats | None = None
    splits: dict[str, int] = field(default_factory=dict)
    source: str = "jsonl"  # how the records are stored: jsonl, text, parquet, arrow, csv, tsv, json
    columns: dict[str, str] | None = None  # the column mapping they were read through

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def first_error(self) -> str:
        """How many errors, and the first with its line: what a form shows before training."""
        first = self.errors[0]
        return f"{counted(self.error_count, 'error')}; {first.where + ': ' if first.where else ''}{first.message}"

    def headline(self, full_path: bool = True) -> str:
        """ "FILE: FORMAT, N valid of M records" (and the splits of a folder)."""
        splits = ", ".join(f"{name} {count}" for name, count in self.splits.items()) if len(self.splits) > 1 else ""
        return (
            f"{self.path if full_path else self.path.name}: {self.format or 'unknown format'}{self.stored_as()}, "
            f"{self.valid_records} valid of {self.records} records" + (f"; {splits}" if splits else "")
        )

    def stored_as(self) -> str:
        """ " (parquet, columns prompt=question,completion=answer)" for a table or a mapped file; "" for JSONL."""
        parts = [self.source] if self.source not in ("jsonl", "text") else []
        if self.columns and any(key != column for key, column in self.columns.items()):
            parts.append(f"columns {format_columns(self.columns)}")
        return f" ({', '.join(parts)})" if parts else ""

    def problems(self) -> list[tuple[str, str | None, int]]:
        """Each error, then each warning, as (the line shown, its file or None for the dataset's own, its line)."""
        rows = [
            (
                f"error   {e.file + ', ' if e.file else ''}{e.where + ': ' if e.where else ''}{e.message}",
                e.file,
                e.line,
            )
            for e in self.errors
        ]
        rows += [
            (f"warning {w.file + ', ' if w.file else ''}{w.where} [{w.kind}]: {w.message}", w.file, w.line)
            for w in self.warnings
        ]
        return rows

    def errors_not_listed(self) -> str | None:
        hidden = self.error_count - len(self.errors)
        return f"... and {hidden} more errors" if hidden > 0 else None

    def describe(self) -> list[str]:
        """The whole report as lines of text (what `data check` prints)."""
        lines = [self.headline()]
        problems = [f"  {text}" for text, _, _ in self.problems()]
        if self.errors_not_listed():
            problems.insert(len(self.errors), f"  {self.errors_not_listed()}")
        lines += problems
        if self.tokens is not None:
            lines += self.tokens.describe()
        return lines

    def to_json(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.format,
            "source": self.source,
            "columns": self.columns,
            "records": self.records,
            "valid_records": self.valid_records,
            "errors": [e.to_json() for e in self.errors],
            "warnings": [w.to_json() for w in self.warnings],
            "tokens": self.tokens.to_json() if self.tokens else None,
        }


def read_dataset_report(
    path: Path, counter: TokenCounter | None = None, columns: dict[str, str] | None = None
) -> DatasetReport:
    """`check_dataset`, with a file the system will not read (permissions, a disk error) a UserError too."""
    try:
        return check_dataset(path, counter, columns=columns)
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror or exc}).") from None


def _has_system(record) -> bool:
    return record.is_chat and any(m["role"] == "system" for m in record.messages)


def check_dataset(
    path: Path,
    counter: TokenCounter | None = None,
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
    columns: dict[str, str] | None = None,
) -> DatasetReport:
    path = Path(path)
    files = dataset_files(path)
    errors: list[Problem] = []
    error_count = 0
    formats: list[str] = []
    valid = 0
    bad_lines = 0
    counts: list[int] = []
    pair_parts: list[tuple[int, int, int]] = []
    splits: dict[str, int] = {}
    linter = Linter()
    state = ReadState(path)
    dropped: list[LintWarning] = []
    system_checked = counter is None  # one record with a system prompt tells what the template does with it
    for split, file in files.items():
        state = ReadState(file)
        label = file.name if len(files) > 1 or file != path else None
        for record in iter_records(file, state, columns):
            valid += 1
            linter.add(record, label)
            if counter is not None and record.is_preference:
                parts = counter.count_pair(record)
                pair_parts.append(parts)
                counts.append(pair_length(parts))
            elif counter is not None:
                counts.append(counter.count(record))
            if not system_checked and _has_system(record):
                system_checked = True
                if system_prompt_dropped(counter.hf, list(record.messages)):
                    dropped.append(LintWarning(record.line, "system-dropped", SYSTEM_DROPPED, label))
        errors += [Problem(p.line, p.message, label, p.place) for p in state.problems]
        error_count += state.problem_count
        bad_lines += state.problem_count
        splits[split] = state.records
        if state.format:
            formats.append(state.format)
    if len(set(formats)) > 1:
        errors.append(Problem(0, f"the files mix formats: {', '.join(sorted(set(formats)))}"))
        error_count += 1
    if valid == 0 and error_count == 0:
        errors.append(Problem(0, "no records: every line is blank"))
        error_count += 1
    return DatasetReport(
        path=path,
        format=formats[0] if formats else None,
        records=valid + bad_lines,
        valid_records=valid,
        errors=errors,
        error_count=error_count,
        warnings=dropped + linter.finish(),
        tokens=token_stats(counter, counts, max_seq_length, pair_parts) if counter is not None else None,
        splits=splits,
        source=state.source,
        columns=state.columns,
    )
