"""The files of an adapter folder, in mlx-lm's own format plus lora-tui's metadata.

adapters/NAME/
  adapters.safetensors   LoRA weights (mlx-lm names)
  adapter_config.json    what `mlx_lm.generate --adapter-path` reads
  lora_tui.json          metadata: base model, dataset and its sha256, losses, ...
  events.jsonl           every training event, one JSON object a line
  run.json               what the run was asked to do (model, data, parameters)
  checkpoints/step-N/    weights, optimizer state, progress (step, epoch, batch, losses)
"""

from __future__ import annotations

import json
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_write_text

ADAPTER_WEIGHTS = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
METADATA = "lora_tui.json"
EVENTS = "events.jsonl"
RUN_SPEC = "run.json"
CHECKPOINTS = "checkpoints"
STOP_FILE = ".stop"  # `train --hosts` creates it to ask its ranks to stop and save

CHECKPOINT_PREFIX = "step-"
OPTIMIZER_STATE = "optimizer.safetensors"
PROGRESS = "progress.json"


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_adapter_config(folder: Path, config: dict) -> None:
    write_json(Path(folder) / ADAPTER_CONFIG, config)


def write_metadata(folder: Path, metadata: dict) -> None:
    write_json(Path(folder) / METADATA, metadata)


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object; anything else is one UserError naming the file."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text (a damaged file?).") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror}).") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: holds {_kind(value)} where an object of settings belongs.")
    return value


def read_metadata(folder: Path) -> dict:
    """lora_tui.json, or {} for an adapter without one (made by plain mlx-lm)."""
    path = Path(folder) / METADATA
    if not path.is_file():
        return {}
    metadata = read_json_object(path)
    if not isinstance(metadata.get("parameters", {}), dict):
        raise UserError(f"{path}: its parameters are {_kind(metadata['parameters'])}, not an object.")
    return metadata


def _kind(value) -> str:
    return "null" if value is None else f"a JSON {type(value).__name__.replace('str', 'string')}"


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:07d}"


def checkpoint_folders(adapter_dir: Path) -> list[Path]:
    """The complete checkpoints (their progress written last), oldest first."""
    folder = Path(adapter_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if (p / PROGRESS).is_file())


def latest_checkpoint(adapter_dir: Path) -> Path | None:
    found = checkpoint_folders(adapter_dir)
    return found[-1] if found else None
