"""`data convert`: any dataset read here, written as JSONL records of its own format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.data.columns import SavedColumns, format_columns, parse_columns
from lora_tui.core.data.records import ReadState, dataset_files, record_lines
from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_writer


@dataclass(frozen=True)
class Converted:
    output: Path
    records: int
    format: str

    def to_json(self) -> dict:
        return {"output": str(self.output), "records": self.records, "format": self.format}


def convert_dataset(path: Path, out: Path, columns: dict[str, str] | None = None) -> list[Converted]:
    """One JSONL file for a dataset of one split; for several (a DatasetDict, a Hub snapshot), `out` is a
    folder that gets train.jsonl, valid.jsonl, test.jsonl. Any bad record refuses, and nothing is left."""
    path, out = Path(path).expanduser(), Path(out).expanduser()
    files = dataset_files(path)
    if len(files) == 1:
        targets = {"train": out}
        if out.suffix.lower() != ".jsonl":
            raise UserError(f"{out}: give the output a .jsonl name (the records are written as JSONL).")
    else:
        targets = {split: out / f"{split}.jsonl" for split in files}
    taken = [str(target) for target in targets.values() if target.exists()]
    if taken:
        raise UserError(f"Will not overwrite {', '.join(taken)}; choose another --out.")
    if any(target.resolve() == file.resolve() for target, file in zip(targets.values(), files.values(), strict=True)):
        raise UserError(f"{out}: the output may not be the input file.")
    for target in targets.values():
        target.parent.mkdir(parents=True, exist_ok=True)
    return [_convert_one(files[split], target, columns) for split, target in targets.items()]


def _convert_one(source: Path, target: Path, columns: dict[str, str] | None) -> Converted:
    state = ReadState(source)
    count = 0
    with atomic_writer(target, exclusive=True) as handle:
        for _, line in record_lines(source, columns, state):
            handle.write(line + "\n")
            count += 1
        if count == 0:
            raise UserError(f"{source}: no records to convert.")
    return Converted(target, count, state.format)


def resolve_columns(path: Path, given: str | None, saved: SavedColumns | None) -> tuple[dict[str, str] | None, str]:
    """The column mapping to read `path` through: the one given, else the one saved for the file in the app.
    Returns it with a line saying where a saved one came from ("" otherwise)."""
    mapping = parse_columns(given)
    if mapping is not None or saved is None:
        return mapping, ""
    remembered = saved.get(path)
    if remembered is None:
        return None, ""
    return remembered, f"{path}: reading it with the column mapping saved in the app ({format_columns(remembered)})."
