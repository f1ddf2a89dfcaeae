"""Where the LoRA went: the adapted modules by type and layer range, and the model's own projection names.

mlx-lm's `linear_to_lora_layers` adapts the projections a model has among the keys it is
given and silently skips the rest: a Phi-3 (one `qkv_proj`) asked for q and v gets LoRA on
nothing of its attention. `check_targets` refuses such a run before anything is written,
reading the weight names from the safetensors headers (no weights loaded);
`adapted_modules` lists, once the LoRA layers are in, what each target got.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.units import counted

LAYER_MODULE = re.compile(r"(?:^|\.)layers\.(?P<layer>\d+)\.(?P<module>.+)$")
PROJECTION = re.compile(r"(?:^|\.)layers\.\d+\.(?P<module>(?:self_attn|mlp|attention|feed_forward)\.[\w.]+?)\.weight$")


@dataclass(frozen=True)
class Adapted:
    module: str  # "self_attn.q_proj", "mlp.switch_mlp.gate_proj"
    layers: tuple[int, ...]
    parameters: int
    experts: int = 0  # a mixture of experts' projection: how many experts each layer adapts

    def to_json(self) -> dict:
        return {**asdict(self), "layers": list(self.layers)}


def adapted_modules(model) -> list[Adapted]:
    """Every LoRA (or DoRA) layer, grouped by the projection it adapts."""
    from mlx.utils import tree_flatten

    groups: dict[str, list] = {}
    for name, module in model.named_modules():
        found = LAYER_MODULE.search(name)
        if found is None or not hasattr(module, "lora_a"):
            continue
        size = sum(v.size for _, v in tree_flatten(module.trainable_parameters()))
        experts = module.lora_a.shape[0] if module.lora_a.ndim == 3 else 0
        groups.setdefault(found["module"], []).append((int(found["layer"]), size, experts))
    return [
        Adapted(module, tuple(sorted(layer for layer, _, _ in rows)), sum(size for _, size, _ in rows), rows[0][2])
        for module, rows in sorted(groups.items(), key=lambda item: _block_order(item[0]))
    ]


def _block_order(module: str) -> tuple:
    """Attention before the MLP, each in --target-modules' order (q, k, v, o; gate, up, down)."""
    from lora_tui.core.training.params import MODULE_KEYS

    keys = list(MODULE_KEYS.values())
    return ("attn" not in module, keys.index(module) if module in keys else len(keys), module)


def unadapted_experts(model) -> list[str]:
    """The mixture-of-experts projections (SwitchLinear) that got no LoRA."""
    names = {
        LAYER_MODULE.search(name)["module"]
        for name, module in model.named_modules()
        if type(module).__name__ in ("SwitchLinear", "QuantizedSwitchLinear") and LAYER_MODULE.search(name)
    }
    return sorted(names)


def describe_adapted(adapted: list[dict], trainable: int, total: int) -> str:
    """`q_proj 16 layers (14-29) 0.3M, ... total 1.8M of 135M (1.3%)`."""
    parts = []
    for group in adapted:
        layers = group["layers"]
        span = f"{layers[0]}" if len(layers) == 1 else f"{layers[0]}-{layers[-1]}"
        experts = f", {group['experts']} experts each" if group.get("experts") else ""
        size = _millions(group["parameters"])
        parts.append(f"{group['module'].split('.')[-1]} {counted(len(layers), 'layer')} ({span}{experts}) {size}")
    share = trainable / total if total else 0.0
    return f"{', '.join(parts) or 'nothing'}; total {_millions(trainable)} of {_millions(total)}, {share:.1%}"


def short_names(projections: list[str]) -> list[str]:
    """A model's projections as --target-modules names them (q, qkv, gate_up, ...), where it can."""
    from lora_tui.core.training.params import MODULE_KEYS

    by_key = {key: short for short, key in MODULE_KEYS.items()}
    return [by_key[p] for p in projections if p in by_key]


def _millions(count: int) -> str:
    if count < 100_000:
        return f"{count / 1e3:.1f}K"
    return f"{count / 1e6:.2f}M" if count < 1e7 else f"{count / 1e6:.0f}M"


def weight_names(model_path: Path) -> list[str]:
    """The weight names of a model folder, from its safetensors headers (no tensor is read)."""
    names = []
    for file in sorted(Path(model_path).glob("*.safetensors")):
        with open(file, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        names += [name for name in header if name != "__metadata__"]
    return names


def model_projections(model_path: Path) -> list[str]:
    """The projections the model's blocks have ("self_attn.qkv_proj", "mlp.down_proj", ...)."""
    found = {m["module"] for name in weight_names(model_path) if (m := PROJECTION.search(name))}
    return sorted(name for name in found if name.endswith("_proj") or ".switch_mlp." in name)


def check_targets(model_path: Path, keys: dict[str, str]) -> None:
    """Refuse target modules the model does not have, naming them and what it has instead."""
    projections = model_projections(model_path)
    if not projections:  # a layout these names do not describe: leave it to mlx-lm
        return
    missing = [short for short, key in keys.items() if key not in projections]
    if missing:
        names = ", ".join(name.split(".")[-1] for name in projections)
        raise UserError(
            f"--target-modules: {Path(model_path).name} has no {', '.join(missing)} projection "
            f"({', '.join(keys[m] for m in missing)}); its projections are {names}."
        )
