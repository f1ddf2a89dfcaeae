"""Adapters turned into other things: fused into their base model, exported for PEFT."""

from __future__ import annotations

import json
from pathlib import Path

from lora_tui.core.adapters.card import write_card
from lora_tui.core.adapters.layout import ADAPTER_WEIGHTS, read_metadata
from lora_tui.core.adapters.registry import adapter_path, describe_adapter, read_adapter_config
from lora_tui.core.adapters.weights import load_adapter_weights
from lora_tui.core.errors import UserError
from lora_tui.core.files import building_dir
from lora_tui.core.models.store import load_model

# Fuse --------------------------------------------------------------------------------


def fuse_adapter(adapters_dir: Path, name: str, base_path: Path, out: Path, dequantize: bool = False) -> Path:
    """Write base + adapter merged into one MLX model folder that mlx-lm loads."""
    from mlx.utils import tree_unflatten
    from mlx_lm.utils import dequantize_model, save

    path = adapter_path(adapters_dir, name)
    out = Path(out)
    if out.exists():
        raise UserError(f"{out} already exists; choose another --out.")
    model, tokenizer = load_model(base_path)
    load_adapter_weights(model, path)
    fused = [(n, m.fuse(dequantize=dequantize)) for n, m in model.named_modules() if hasattr(m, "fuse")]
    model.update_modules(tree_unflatten(fused))
    config = json.loads((Path(base_path) / "config.json").read_text())
    if dequantize:
        dequantize_model(model)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    with building_dir(out) as staging:
        save(staging, str(base_path), model, tokenizer, config, donate_model=False)
    return out


# Export ------------------------------------------------------------------------------


def export_peft(adapters_dir: Path, name: str, out: Path, base_model_name: str | None = None) -> Path:
    """adapter_model.safetensors + adapter_config.json in PEFT's layout.

    MLX's LoRALinear computes x W^T + scale * (x A) B with A (in, r) and B (r, out);
    PEFT computes x W^T + (alpha / r) * B(A(x)) with A.weight (r, in), B.weight
    (out, r): so A and B are transposed and lora_alpha = scale * r.
    """
    import mlx.core as mx
    import numpy as np
    from safetensors.numpy import save_file

    path = adapter_path(adapters_dir, name)
    config = read_adapter_config(path)
    if config.get("fine_tune_type", "lora") != "lora":
        raise UserError(f"{name}: only LoRA adapters can be exported to PEFT (this one is {config['fine_tune_type']}).")
    out = Path(out)
    if out.exists():
        raise UserError(f"{out} already exists; choose another --out.")
    lora = config["lora_parameters"]
    weights = mx.load(str(path / ADAPTER_WEIGHTS))
    tensors, modules, layers = {}, set(), set()
    for key, value in weights.items():
        module, leaf = key.rsplit(".", 1)  # model.layers.N.self_attn.q_proj, lora_a
        if leaf not in ("lora_a", "lora_b"):
            raise UserError(f"{name}: tensor {key} cannot be expressed in PEFT's LoRA layout.")
        array = np.array(value.astype(mx.float32)).T.copy()
        peft_leaf = "lora_A" if leaf == "lora_a" else "lora_B"
        tensors[f"base_model.model.{module}.{peft_leaf}.weight"] = array
        modules.add(module.rsplit(".", 1)[-1])
        layers.add(int(module.split(".")[2]))
    meta = read_metadata(path)
    peft_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model_name or meta.get("base_model") or config.get("model"),
        "r": lora["rank"],
        "lora_alpha": lora["scale"] * lora["rank"],
        "lora_dropout": lora.get("dropout", 0.0),
        "target_modules": sorted(modules),
        "layers_to_transform": sorted(layers),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "use_dora": False,
    }
    with building_dir(out) as staging:
        save_file(tensors, str(staging / "adapter_model.safetensors"), metadata={"format": "pt"})
        (staging / "adapter_config.json").write_text(json.dumps(peft_config, indent=2))
        write_card(staging, describe_adapter(path), "peft", "Hugging Face PEFT")
    return out
