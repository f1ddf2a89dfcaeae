"""What both preference benches need of mlx-lm-lora's side: the policy with LoRA layers and a second copy of
the model as its reference (as mlx-lm-lora's CLI loads them), both float32 on a CPU, the peak counted from here."""

from __future__ import annotations

from pathlib import Path


def policy_and_reference(model_path: Path, rank: int, keys: list[str]):
    """(policy with LoRA on the last 16 layers' `keys`, frozen reference, tokenizer). mlx-lm-lora's trainers read
    `max_recommended_working_set_size` from `mx.device_info()`, which MLX's CPU backend lacks: it is supplied."""
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from lora_tui.core.models.store import expand_for_cpu

    device_info = mx.device_info
    mx.device_info = lambda: {"max_recommended_working_set_size": 1 << 40, **device_info()}
    mx.reset_peak_memory()
    model, tokenizer = load(str(model_path))
    expand_for_cpu(model)
    model.freeze()
    linear_to_lora_layers(model, 16, {"rank": rank, "scale": 2.0, "dropout": 0.0, "keys": keys})
    reference, _ = load(str(model_path))
    expand_for_cpu(reference)
    reference.freeze()
    return model, reference, tokenizer
