"""`data check`: validation, lint and token budget of a dataset in one pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lora_tui.core.data.lint import Linter, LintWarning
from lora_tui.core.data.records import Problem, ReadState, dataset_files, iter_records
from lora_tui.core.data.tokens import TokenCounter, TokenStats, pair_length, token_stats
from lora_tui.core.errors import UserError
from lora_tui.core.units import counted

DEFAULT_MAX_SEQ_LENGTH = 2048


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

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def first_error(self) -> str:
        """How many errors, and the first with its line: what a form shows before training."""
        first = self.errors[0]
        return f"{counted(self.error_count, 'error')}; line {first.line}: {first.message}"

    def headline(self, full_path: bool = True) -> str:
        """ "FILE: FORMAT, N valid of M records" (and the splits of a folder)."""
        splits = ", ".join(f"{name} {count}" for name, count in self.splits.items()) if len(self.splits) > 1 else ""
        return (
            f"{self.path if full_path else self.path.name}: {self.format or 'unknown format'}, "
            f"{self.valid_records} valid of {self.records} records" + (f"; {splits}" if splits else "")
        )

    def problems(self) -> list[tuple[str, str | None, int]]:
        """Each error, then each warning, as (the line shown, its file or None for the dataset's own, its line)."""
        rows = [
            (
                f"error   {e.file + ', ' if e.file else ''}{f'line {e.line}: ' if e.line else ''}{e.message}",
                e.file,
                e.line,
            )
            for e in self.errors
        ]
        rows += [
            (f"warning {w.file + ', ' if w.file else ''}line {w.line} [{w.kind}]: {w.message}", w.file, w.line)
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
            "records": self.records,
            "valid_records": self.valid_records,
            "errors": [e.to_json() for e in self.errors],
            "warnings": [w.to_json() for w in self.warnings],
            "tokens": self.tokens.to_json() if self.tokens else None,
        }


def read_dataset_report(path: Path, counter: TokenCounter | None = None) -> DatasetReport:
    """`check_dataset`, with a file the system will not read (permissions, a disk error) a UserError too."""
    try:
        return check_dataset(path, counter)
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror or exc}).") from None


def check_dataset(
    path: Path, counter: TokenCounter | None = None, max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
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
    for split, file in files.items():
        state = ReadState(file)
        label = file.name if path.is_dir() else None
        for record in iter_records(file, state):
            valid += 1
            linter.add(record, label)
            if counter is not None and record.is_preference:
                parts = counter.count_pair(record)
                pair_parts.append(parts)
                counts.append(pair_length(parts))
            elif counter is not None:
                counts.append(counter.count(record))
        errors += [Problem(p.line, p.message, label) for p in state.problems]
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
        warnings=linter.finish(),
        tokens=token_stats(counter, counts, max_seq_length, pair_parts) if counter is not None else None,
        splits=splits,
    )
