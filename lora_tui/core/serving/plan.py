"""What one server serves: a base model and adapters of that base, checked before anything loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.adapters.registry import (
    AdapterInfo,
    adapter_base_path,
    get_adapter,
    list_adapters,
    refuse_other_base,
)
from lora_tui.core.errors import UserError
from lora_tui.core.models.store import resolve_model


@dataclass(frozen=True)
class ServePlan:
    model_path: Path
    model_name: str  # as the model store names it (what adapters record as their base)
    base_name: str  # the base's id on the server
    adapters: dict[str, Path]  # id on the server -> adapter folder


def plan_serving(
    adapters_dir: Path,
    models_dir: Path,
    extra_dirs: list[Path],
    model: str | None = None,
    adapter_names: list[str] = (),
) -> ServePlan:
    """The base and adapters to serve. With a model and no adapter named: the model and every usable adapter
    trained on it. With adapters and no model: their base, which must be one."""
    chosen = [get_adapter(adapters_dir, name) for name in dict.fromkeys(adapter_names)]
    if model:
        model_path, model_name = resolve_model(model, models_dir, extra_dirs)
        for info in chosen:
            refuse_other_base(info.path, model_path, model_name)
        if not chosen:
            chosen = adapters_of_base(adapters_dir, model_path, model_name)
    elif chosen:
        model_path, model_name = _one_base(chosen, models_dir, extra_dirs)
    else:
        raise UserError("Name a model (--model M), adapters (--adapter NAME ...), or both.")
    base_name = Path(model_name).name if Path(model_name).expanduser().is_dir() else model_name
    if base_name in {info.name for info in chosen}:
        raise UserError(f"An adapter has the base model's name ({base_name!r}); rename it to serve both.")
    return ServePlan(model_path, model_name, base_name, {info.name: info.path for info in chosen})


def plan_for_adapter(adapters_dir: Path, models_dir: Path, extra_dirs: list[Path], info: AdapterInfo) -> ServePlan:
    """The adapter's base, with it and every other adapter of that base (the Adapters screen's serve key)."""
    base = adapter_base_path(info, models_dir, extra_dirs)
    return plan_serving(adapters_dir, models_dir, extra_dirs, str(base))


def adapters_of_base(adapters_dir: Path, model_path: Path, model_name: str) -> list[AdapterInfo]:
    """Every adapter trained on this base that can be used now (not broken, not training)."""
    found = []
    for info in list_adapters(adapters_dir):
        if not info.usable or info.status == "training":
            continue
        try:
            refuse_other_base(info.path, model_path, model_name)
        except UserError:
            continue
        found.append(info)
    return found


def _one_base(chosen: list[AdapterInfo], models_dir: Path, extra_dirs: list[Path]) -> tuple[Path, str]:
    bases = {info.name: adapter_base_path(info, models_dir, extra_dirs) for info in chosen}
    if len({path.resolve() for path in bases.values()}) > 1:
        named = "; ".join(f"{info.name}: {info.base_model or bases[info.name]}" for info in chosen)
        raise UserError(
            f"These adapters are of different base models ({named}); one server serves one base: "
            "say which with --model M."
        )
    first = chosen[0]
    return bases[first.name], first.base_model or bases[first.name].name
