"""The adapter registry: list, show, rename, delete, checkpoints and promoting one.

Adapters trained by lora-tui carry lora_tui.json; adapter folders made by plain
mlx-lm (adapter_config.json + adapters.safetensors) placed in adapters/ are
listed too, with the metadata their config holds.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from lora_tui.core.adapters.layout import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    CHECKPOINTS,
    EVENTS,
    PROGRESS,
    RUN_SPEC,
    checkpoint_folders,
    read_json_object,
    read_metadata,
    write_metadata,
)
from lora_tui.core.adapters.lock import adapter_lock, holder, refuse_if_busy
from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_writer, folder_size
from lora_tui.core.models.store import resolve_model_path
from lora_tui.core.names import validate_name

# The status of an adapter that cannot be used, beside "training", "finished", "cancelled" ...
BROKEN, FAILED, NO_WEIGHTS = "broken", "failed", "no weights yet"


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: Path
    source: str  # "lora-tui" or "mlx-lm"
    base_model: str | None
    base_model_path: str | None
    dataset: str | None
    created: str | None
    final_train_loss: float | None
    best_val_loss: float | None
    rank: int | None
    alpha: float | None
    epochs: float | None
    steps: int | None
    learning_rate: float | None
    size_bytes: int
    fine_tune_type: str
    status: str | None
    method: str = "sft"
    reward_margin: float | None = None  # preference runs: the last validation's (else the last step's)
    reward_accuracy: float | None = None
    reward: float | None = None  # grpo: the last validation's held-out reward (else the last step's)
    problem: str | None = None  # why it cannot be used (status broken, failed or no weights yet)

    @property
    def usable(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


def is_adapter_dir(path: Path) -> bool:
    return (path / ADAPTER_CONFIG).is_file() and (path / ADAPTER_WEIGHTS).is_file()


def read_adapter_config(path: Path) -> dict:
    """adapter_config.json, checked for what mlx-lm needs of it; a problem is one UserError naming the key."""
    file = Path(path) / ADAPTER_CONFIG
    config = read_json_object(file)
    problem = _config_problem(config)
    if problem:
        raise UserError(f"{file}: {problem}.")
    return config


def _config_problem(config: dict) -> str | None:
    kind = config.get("fine_tune_type", "lora")
    if kind not in ("lora", "dora", "full"):
        return f"fine_tune_type is {kind!r}, not lora, dora or full"
    if kind == "full":  # the whole weights: no LoRA layers to make
        return None
    if not _whole(config.get("num_layers")):
        return f"num_layers is {config.get('num_layers')!r}, not a whole number"
    lora = config.get("lora_parameters")
    if not isinstance(lora, dict):
        return "it has no lora_parameters"
    if not _whole(lora.get("rank")) or lora["rank"] < 1:
        return f"lora_parameters.rank is {lora.get('rank')!r}, not a whole number of 1 or more"
    for key in ("scale", "dropout"):
        if not _number(lora.get(key)):
            return f"lora_parameters.{key} is {lora.get(key)!r}, not a number"
    keys = lora.get("keys")
    if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        return f"lora_parameters.keys is {keys!r}, not a list of module names"
    return None


def _or_none(value, kind):
    """`value` if it is of the kind (a damaged metadata file may say anything), else None."""
    return value if kind(value) else None


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def describe_adapter(path: Path) -> AdapterInfo:
    config = read_adapter_config(path)
    meta = read_metadata(path)
    lora = config.get("lora_parameters", {})
    params = meta.get("parameters", {})
    rank = _or_none(params.get("rank", lora.get("rank")), _whole)
    scale = _or_none(lora.get("scale"), _number)
    alpha = _or_none(params.get("alpha"), _number) or (scale * rank if scale is not None and rank else None)
    return AdapterInfo(
        name=path.name,
        path=path,
        source="lora-tui" if meta else "mlx-lm",
        base_model=meta.get("base_model", config.get("model")),
        base_model_path=meta.get("base_model_path", config.get("model")),
        dataset=meta.get("dataset", config.get("data")),
        created=meta.get("created"),
        final_train_loss=_or_none(meta.get("final_train_loss"), _number),
        best_val_loss=_or_none(meta.get("best_val_loss"), _number),
        rank=rank,
        alpha=alpha,
        epochs=_or_none(meta.get("epochs"), _number),
        steps=_or_none(meta.get("steps", config.get("iters")), _whole),
        learning_rate=_or_none(params.get("learning_rate", config.get("learning_rate")), _number),
        size_bytes=folder_size(path),
        fine_tune_type=config.get("fine_tune_type", "lora"),
        status="training" if _being_trained(path) else meta.get("status"),
        method=params.get("method", "sft"),
        **_final_rewards(meta),
    )


def _final_rewards(meta: dict) -> dict:
    rewards = meta.get("final_val_preference") or meta.get("final_preference") or {}
    grpo = meta.get("final_val_rewards") or meta.get("final_rewards") or {}
    return {
        "reward_margin": rewards.get("reward_margin"),
        "reward_accuracy": rewards.get("reward_accuracy"),
        "reward": _or_none(grpo.get("reward"), _number),
    }


def _being_trained(path: Path) -> bool:
    found = holder(path.parent, path.name)
    return found is not None and found.doing == "training"


def list_adapters(adapters_dir: Path) -> list[AdapterInfo]:
    """Every adapter folder: usable ones, and broken or unfinished ones with what is wrong (never hidden)."""
    if not Path(adapters_dir).is_dir():
        return []
    found = []
    for folder in sorted(Path(adapters_dir).iterdir()):
        if folder.is_dir() and not folder.name.startswith("."):
            info = describe_folder(folder)
            if info is not None:
                found.append(info)
    return found


def describe_folder(folder: Path) -> AdapterInfo | None:
    """The adapter a folder holds, whatever its state; None for a folder that was never an adapter."""
    try:
        if is_adapter_dir(folder):
            return describe_adapter(folder)
        if _being_trained(folder):
            return _describe_first_run(folder)
    except UserError as exc:
        return _unusable(folder, BROKEN, str(exc))
    if (folder / RUN_SPEC).is_file() or (folder / EVENTS).is_file():
        return _describe_unfinished(folder)
    if (folder / ADAPTER_CONFIG).is_file() or (folder / ADAPTER_WEIGHTS).is_file():
        missing = ADAPTER_WEIGHTS if (folder / ADAPTER_CONFIG).is_file() else ADAPTER_CONFIG
        return _unusable(folder, BROKEN, f"{folder}: {missing} is missing.")
    return None


def _describe_unfinished(folder: Path) -> AdapterInfo:
    """A run that never saved its weights: killed, failed, or stopped by a full disk before its end."""
    last = _last_event(folder)
    kind = last.get("type")
    reason = last.get("message") or last.get("reason")
    said = f" (last event: {kind}{f': {reason}' if reason else ''})" if kind else ""
    checkpoints = checkpoint_folders(folder) if (folder / CHECKPOINTS).is_dir() else []
    if checkpoints:
        problem = (
            f"{folder.name}: its run stopped after {checkpoints[-1].name}{said}; continue it with "
            f"`lora-tui train ... --name {folder.name} --resume`, or delete it."
        )
    else:
        problem = f"{folder.name}: its run stopped before saving any weights{said}; delete it, or train it again."
    return _unusable(folder, FAILED if kind == "failed" else NO_WEIGHTS, problem)


def _last_event(folder: Path) -> dict:
    try:
        lines = (folder / EVENTS).read_text(encoding="utf-8", errors="replace").strip().splitlines()
        event = json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError):
        return {}
    return event if isinstance(event, dict) else {}


def _unusable(folder: Path, status: str, problem: str) -> AdapterInfo:
    try:
        run = read_json_object(folder / RUN_SPEC) if (folder / RUN_SPEC).is_file() else {}
    except UserError:
        run = {}
    return AdapterInfo(
        name=folder.name,
        path=folder,
        source="lora-tui",
        base_model=run.get("model") if isinstance(run.get("model"), str) else None,
        base_model_path=None,
        dataset=None,
        created=None,
        final_train_loss=None,
        best_val_loss=None,
        rank=None,
        alpha=None,
        epochs=None,
        steps=None,
        learning_rate=None,
        size_bytes=folder_size(folder),
        fine_tune_type="lora",
        status=status,
        problem=problem,
    )


def _describe_first_run(path: Path) -> AdapterInfo:
    """An adapter whose first run is training: no weights yet, but what run.json says it will be."""
    try:
        run = json.loads((path / RUN_SPEC).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        run = {}
    parameters = run.get("parameters", {})
    return AdapterInfo(
        name=path.name,
        path=path,
        source="lora-tui",
        base_model=run.get("model"),
        base_model_path=run.get("model_path"),
        dataset=run.get("data"),
        created=None,
        final_train_loss=None,
        best_val_loss=None,
        rank=parameters.get("rank"),
        alpha=parameters.get("alpha"),
        epochs=None,
        steps=None,
        learning_rate=parameters.get("learning_rate"),
        size_bytes=folder_size(path),
        fine_tune_type=parameters.get("fine_tune_type", "lora"),
        status="training",
    )


def adapter_folder(adapters_dir: Path, name: str) -> Path:
    """The folder of the adapter `name`, in whatever state (for show, rename and delete)."""
    name = validate_name(name, "adapter name")
    path = Path(adapters_dir) / name
    if not path.is_dir():
        raise UserError(f"No adapter named {name!r} (see `lora-tui adapters list`).")
    return path


def adapter_path(adapters_dir: Path, name: str) -> Path:
    """The folder of a usable adapter; for a broken or unfinished one, the sentence that says why not."""
    return get_adapter(adapters_dir, name).path


def find_adapter(adapters_dir: Path, name: str) -> AdapterInfo:
    """The adapter `name` as `adapters list` shows it, broken or unfinished ones included."""
    path = adapter_folder(adapters_dir, name)
    info = describe_folder(path)
    if info is None:
        raise UserError(f"{path}: not an adapter (it has no {ADAPTER_CONFIG}, {ADAPTER_WEIGHTS} or run).")
    return info


def get_adapter(adapters_dir: Path, name: str) -> AdapterInfo:
    """A usable adapter (to chat with, evaluate, export ...); one that is not is a UserError saying why."""
    info = find_adapter(adapters_dir, name)
    if not info.usable:
        raise UserError(info.problem)
    return info


def adapter_base_path(info: AdapterInfo, models_dir: Path, extra_dirs: list[Path] = ()) -> Path:
    """The base model folder the adapter was trained on; a clear error when it is gone."""
    base = info.base_model_path or info.base_model
    if not base:
        raise UserError(f"The adapter {info.name!r} does not record its base model.")
    if info.base_model_path and Path(info.base_model_path).is_dir():
        return Path(info.base_model_path)
    try:
        return resolve_model_path(info.base_model or base, models_dir, list(extra_dirs))
    except UserError:
        looked = [str(p) for p in (info.base_model_path, models_dir, *extra_dirs) if p]
        raise UserError(
            f"The base model of {info.name!r} is missing: {info.base_model or base} (looked in {', '.join(looked)})."
        ) from None


def rename_adapter(adapters_dir: Path, old: str, new: str) -> Path:
    if validate_name(new, "new adapter name") == validate_name(old, "adapter name"):
        raise UserError(f"The adapter is already named {old!r}.")
    refuse_if_busy(adapters_dir, old)
    source = adapter_folder(adapters_dir, old)
    target = Path(adapters_dir) / new
    with adapter_lock(adapters_dir, source.name, doing="renaming"), adapter_lock(adapters_dir, new, doing="renaming"):
        if target.exists():
            raise UserError(f"An adapter named {new!r} already exists.")
        os.rename(source, target)
        try:
            meta = read_metadata(target)
        except UserError:  # a damaged file is renamed with its folder, as it is
            meta = {}
        if meta:
            write_metadata(target, {**meta, "name": new})
    return target


def delete_adapter(adapters_dir: Path, name: str) -> None:
    refuse_if_busy(adapters_dir, validate_name(name, "adapter name"))
    path = adapter_folder(adapters_dir, name)
    with adapter_lock(adapters_dir, path.name, doing="deleting"):
        shutil.rmtree(path)


# Checkpoints -------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointInfo:
    name: str
    step: int
    val_loss: float | None
    path: Path


def list_checkpoints(adapter_dir: Path) -> list[CheckpointInfo]:
    """The run's saved checkpoints, oldest first."""
    found = []
    for path in checkpoint_folders(adapter_dir):
        try:
            progress = json.loads((path / PROGRESS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # half-written or foreign: not a checkpoint one can use
        if (path / ADAPTER_WEIGHTS).is_file():
            found.append(CheckpointInfo(path.name, int(progress.get("step", 0)), progress.get("val_loss"), path))
    return found


def promote_checkpoint(adapters_dir: Path, name: str, checkpoint: str) -> CheckpointInfo:
    """Make a checkpoint's weights the adapter's own; the checkpoints themselves stay."""
    refuse_if_busy(adapters_dir, validate_name(name, "adapter name"))
    path = adapter_path(adapters_dir, name)
    with adapter_lock(adapters_dir, path.name, doing="promoting"):
        return _promote(path, name, checkpoint)


def _promote(path: Path, name: str, checkpoint: str) -> CheckpointInfo:
    chosen = next((c for c in list_checkpoints(path) if c.name == checkpoint), None)
    if chosen is None:
        known = ", ".join(c.name for c in list_checkpoints(path)) or "none"
        raise UserError(f"{name}: no checkpoint {checkpoint!r} (checkpoints: {known}).")
    with atomic_writer(path / ADAPTER_WEIGHTS, "wb") as handle:
        handle.write((chosen.path / ADAPTER_WEIGHTS).read_bytes())
    meta = read_metadata(path)
    if meta:
        write_metadata(
            path,
            {
                **meta,
                "promoted_checkpoint": chosen.name,
                "steps": chosen.step,
                "best_val_loss": chosen.val_loss if chosen.val_loss is not None else meta.get("best_val_loss"),
            },
        )
    return chosen


def refuse_other_base(adapter_dir: Path, model_path: Path, model_name: str = "") -> None:
    """Refuse an adapter trained on another base model than `model_path`, naming both."""
    meta = read_metadata(adapter_dir)
    recorded = meta.get("base_model_path") or read_adapter_config(adapter_dir).get("model")
    if not recorded:
        return
    model_path = Path(model_path)
    same = Path(recorded).expanduser().exists() and Path(recorded).expanduser().resolve() == model_path.resolve()
    if not same and recorded not in (model_name, str(model_path)):
        trained_on = meta.get("base_model") or recorded
        raise UserError(
            f"The adapter {adapter_dir.name!r} was trained on {trained_on!r}, not on {model_name or str(model_path)!r}."
        )
