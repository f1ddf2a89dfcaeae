"""Putting an adapter's LoRA layers into a loaded model, and taking them out again."""

from __future__ import annotations

from pathlib import Path

from lora_tui.core.errors import UserError


def is_lora_module(module) -> bool:
    from mlx_lm.tuner.dora import DoRALinear
    from mlx_lm.tuner.lora import LoRALinear

    return isinstance(module, (LoRALinear, DoRALinear))


def remove_adapter_layers(model) -> None:
    from mlx.utils import tree_unflatten

    plain = [(name, module.linear) for name, module in model.named_modules() if is_lora_module(module)]
    if plain:
        model.update_modules(tree_unflatten(plain))


def load_adapter_weights(model, adapter_dir: Path) -> None:
    """Apply an adapter to a model loaded without one (as mlx-lm does, with clear errors)."""
    from mlx_lm.tuner.utils import load_adapters

    try:
        load_adapters(model, str(adapter_dir))
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{adapter_dir}: cannot load this adapter ({detail}).") from None
