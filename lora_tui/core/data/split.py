"""Split one dataset file into train/valid/test.jsonl, reproducibly.

Records that are duplicates (exact, or equal after folding case, punctuation
and spacing) are kept together, so no duplicate straddles two sets.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from lora_tui.core.data.lint import normalised
from lora_tui.core.data.records import dataset_files, record_lines
from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_write_text


def split_dataset(
    path: Path,
    out_dir: Path,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.0,
    seed: int = 0,
    columns: dict[str, str] | None = None,
) -> dict[str, int]:
    """Write out_dir/train.jsonl, valid.jsonl (and test.jsonl); return record counts. A table (or a file read
    through a column mapping) is written as JSONL records of its format."""
    path, out_dir = Path(path), Path(out_dir)
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise UserError(
            "The validation and test fractions must each be at least 0 and below 1, and add up to less than 1."
        )
    files = dataset_files(path)
    if len(files) > 1 or (path.is_dir() and files["train"] != path):
        raise UserError(f"{path}: split takes one file (or one table), not a folder of splits.")
    names = ["train", "valid"] + (["test"] if test_fraction > 0 else [])
    targets = {name: out_dir / f"{name}.jsonl" for name in names}
    taken = [str(t) for t in targets.values() if t.exists()]
    if taken:
        raise UserError(f"Will not overwrite {', '.join(taken)}; choose an empty --out folder.")

    lines = _valid_lines(files["train"], columns)
    groups: dict[str, list[str]] = defaultdict(list)
    for text, normal_form in lines:
        groups[normal_form].append(text)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    total = len(lines)
    wanted = {"test": round(total * test_fraction), "valid": round(total * valid_fraction)}
    if valid_fraction > 0 and total >= 2:
        wanted["valid"] = max(wanted["valid"], 1)
    chosen: dict[str, list[str]] = {name: [] for name in names}
    for key in order:
        bucket = next((n for n in ("test", "valid") if n in chosen and len(chosen[n]) < wanted[n]), "train")
        chosen[bucket] += groups[key]
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, target in targets.items():
        atomic_write_text(target, "".join(line + "\n" for line in chosen[name]), exclusive=True)
    return {name: len(chosen[name]) for name in names}


def _valid_lines(path: Path, columns: dict[str, str] | None) -> list[tuple[str, str]]:
    """(JSONL line to write, duplicate key) for every record; any error refuses."""
    try:
        result = [(line, normalised(record.plain_text())) for record, line in record_lines(path, columns)]
    except UserError as exc:
        raise UserError(f"{str(exc).rstrip('.')}. Fix it (see `lora-tui data check`) before splitting.") from None
    if not result:
        raise UserError(f"{path}: no records to split.")
    return result
