"""The model card (README.md) every export folder carries."""

from __future__ import annotations

import json
from pathlib import Path

from lora_tui.core.adapters.layout import read_metadata
from lora_tui.core.adapters.registry import AdapterInfo
from lora_tui.core.files import atomic_write_text

CARD = "README.md"


def write_card(folder: Path, info: AdapterInfo, library: str, made_for: str) -> None:
    """README.md: YAML front matter (base model, library, tags, license, dataset) and what the adapter is."""
    meta = read_metadata(info.path)
    parameters = meta.get("parameters", {})
    base = meta.get("base_model") or info.base_model or "unknown"
    front = [
        "---",
        f"base_model: {base}",
        f"library_name: {library}",
        "tags:",
        "  - lora",
        "  - lora-tui",
        f"  - {library}",
    ]
    license_name = _base_license(Path(info.base_model_path)) if info.base_model_path else None
    if license_name:
        front.append(f"license: {license_name}")
    front.append("---")
    dataset = Path(meta["dataset"]).name if meta.get("dataset") else "unknown"
    body = [
        f"# {info.name}",
        "",
        f"A LoRA adapter of `{base}` trained with lora-tui, exported for {made_for}.",
        "",
        "## Training data",
        "",
        f"- dataset: `{dataset}`" + (f" ({_records(meta['dataset'])} records)" if meta.get("dataset") else ""),
        f"- sha256: `{meta.get('dataset_sha256', 'unknown')}`",
        "",
        "## Parameters",
        "",
        "| parameter | value |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in parameters.items() if value is not None),
        "",
        "## Results",
        "",
        f"- steps: {meta.get('steps', '-')}, epochs: {meta.get('epochs', '-')}",
        f"- tokens seen: {meta.get('tokens_seen', '-')}",
        f"- final train loss: {_rounded(meta.get('final_train_loss'))}",
        f"- best validation loss: {_rounded(meta.get('best_val_loss'))}",
    ]
    if meta.get("last_evaluation"):
        body += ["", "## Last evaluation", "", "```json", json.dumps(meta["last_evaluation"], indent=2), "```"]
    atomic_write_text(folder / CARD, "\n".join([*front, "", *body]) + "\n")


def _records(dataset: str) -> int | str:
    path = Path(dataset)
    path = path / "train.jsonl" if path.is_dir() else path
    try:
        with open(path, encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return "?"


def _rounded(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"


def _base_license(base_path: Path) -> str | None:
    """The license in the base model's own card (its YAML front matter), when it has one."""
    card = base_path / CARD
    if not card.is_file():
        return None
    lines = card.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for line in lines[1:]:
        if line.strip() == "---":
            break
        if line.startswith("license:"):
            return line.split(":", 1)[1].strip() or None
    return None
