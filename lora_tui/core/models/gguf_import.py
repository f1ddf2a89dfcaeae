"""Turn a GGUF file (Ollama's and LM Studio's stores) into an MLX model folder.

Quantized tensors stay quantized: `mx.load` reads Q4_0, Q4_1 and Q8_0 blocks as
MLX affine-quantized triplets (weight, scales, biases; group size 32), which
mlx-lm loads with a per-layer quantization table in config.json. F32, F16 and
BF16 tensors stay as they are.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lora_tui.core.errors import UserError
from lora_tui.core.files import building_dir, exclusively
from lora_tui.core.models.gguf import GGUFError, GGUFFile, TensorInfo, read_gguf, scalar
from lora_tui.core.models.gguf_tokenizer import TokenizerImportError, write_tokenizer
from lora_tui.core.names import name_from_filename, validate_name

SUPPORTED_ARCHITECTURES = ("llama",)
IMPORT_RECORD = "lora_tui_import.json"  # where an imported model came from
SUPPORTED_TENSOR_TYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q8_0")
GGUF_GROUP_SIZE = 32

_LAYER_PARTS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_TOP_LEVEL = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
# Tensors llama.cpp derives for itself; mlx-lm computes them from the config.
_SKIPPED = {"rope_freqs"}


def mlx_name(gguf_base: str) -> str | None:
    """`blk.3.attn_q` -> `model.layers.3.self_attn.q_proj`; None for skipped tensors."""
    if gguf_base in _SKIPPED:
        return None
    if gguf_base in _TOP_LEVEL:
        return _TOP_LEVEL[gguf_base]
    match = re.fullmatch(r"blk\.(\d+)\.(\w+)", gguf_base)
    if match and match.group(2) in _LAYER_PARTS:
        return f"model.layers.{match.group(1)}.{_LAYER_PARTS[match.group(2)]}"
    raise UserError(f"tensor {gguf_base!r} has no place in a llama model")


def unpermute_rows(array, n_heads: int):
    """Undo llama.cpp's reordering of Q/K rows for its RoPE layout, per head."""
    rows = array.shape[0]
    head_dim = rows // n_heads
    return array.reshape(n_heads, head_dim // 2, 2, *array.shape[1:]).swapaxes(1, 2).reshape(array.shape)


def import_gguf(
    gguf_path: Path,
    models_dir: Path,
    name: str | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """Import `gguf_path` as models_dir/NAME; return the new folder."""
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise UserError(f"{gguf_path}: no such file.")
    name = validate_name(name, "model name") if name else name_from_filename(gguf_path.stem)
    target = Path(models_dir) / name
    if target.exists():
        raise UserError(f"A model named {name!r} already exists at {target}; choose another --name.")
    try:
        gguf = read_gguf(gguf_path)
    except GGUFError as exc:
        raise UserError(f"{gguf_path}: {exc}.") from None
    except OSError as exc:
        raise UserError(f"{gguf_path}: cannot read it ({exc.strerror}).") from None
    _check_supported(gguf)
    with exclusively(target):  # two imports of one name at once: one writes it, the other is refused
        if target.exists():
            raise UserError(f"A model named {name!r} already exists at {target}; choose another --name.")
        log(f"Importing {gguf_path.name}: {len(gguf.tensors)} tensors")
        with building_dir(target) as staging:
            _write_model(gguf, staging, log)
    log(f"Imported as {target}")
    return target


def _check_supported(gguf: GGUFFile) -> None:
    architecture = gguf.metadata.get("general.architecture")
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise UserError(
            f"{gguf.path}: architecture {architecture!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})."
        )
    for tensor in gguf.tensors:
        if tensor.type_name not in SUPPORTED_TENSOR_TYPES:
            raise UserError(
                f"{gguf.path}: tensor {tensor.name!r} has type {tensor.type_name}, which is not supported "
                f"(supported: {', '.join(SUPPORTED_TENSOR_TYPES)}); use a Q4_0, Q4_1, Q8_0 or F16 file."
            )


def _write_model(gguf: GGUFFile, folder: Path, log: Callable[[str], None]) -> None:
    import mlx.core as mx

    config = model_config(gguf)
    try:
        raw = mx.load(str(gguf.path))
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"{gguf.path}: cannot read its tensors ({exc}).") from None
    weights, quantized_bits = _convert_tensors(gguf, raw, config)
    if quantized_bits:
        config["quantization"] = _quantization_table(quantized_bits)
    if any(gguf.tensor(base + ".weight") is not None for base in _SKIPPED):
        log("Note: rope_freqs (long-context RoPE scaling) is not carried over.")
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    try:
        write_tokenizer(gguf.metadata, folder)
    except TokenizerImportError as exc:
        raise UserError(f"{gguf.path}: {exc}.") from None
    provenance = {"imported_from": str(gguf.path), "gguf_name": str(gguf.metadata.get("general.name", ""))}
    (folder / IMPORT_RECORD).write_text(json.dumps(provenance, indent=2), encoding="utf-8")


def _convert_tensors(gguf: GGUFFile, raw: dict, config: dict) -> tuple[dict, dict[str, int]]:
    weights: dict = {}
    quantized_bits: dict[str, int] = {}
    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    for tensor in gguf.tensors:
        base, _, suffix = tensor.name.rpartition(".")
        target = mlx_name(base)
        if target is None:
            continue
        part = base.rsplit(".", 1)[-1]
        triplet = [raw[f"{base}.{key}"] for key in ("weight", "scales", "biases")] if f"{base}.scales" in raw else None
        if triplet is not None:
            if part in heads and base.startswith("blk."):
                triplet = [unpermute_rows(array, heads[part]) for array in triplet]
            weights.update(zip((f"{target}.weight", f"{target}.scales", f"{target}.biases"), triplet, strict=True))
            quantized_bits[target] = _bits(triplet[0], triplet[1])
            continue
        array = _bf16_tensor(gguf, tensor) if tensor.type_name == "BF16" else raw[tensor.name]
        if part in heads and base.startswith("blk."):
            array = unpermute_rows(array, heads[part])
        weights[f"{target}.{suffix}"] = array
    return weights, quantized_bits


def _bits(packed_weight, scales) -> int:
    """Bits per weight from the shapes: packed uint32 columns vs. quantized inputs."""
    inputs = scales.shape[-1] * GGUF_GROUP_SIZE
    return packed_weight.shape[-1] * 32 // inputs


def _bf16_tensor(gguf: GGUFFile, tensor: TensorInfo):
    """mx.load turns BF16 into F16 (losing range); read the raw bits instead."""
    import mlx.core as mx

    count = int(np.prod(tensor.shape, dtype=np.int64))
    bits = np.fromfile(gguf.path, dtype=np.uint16, count=count, offset=tensor.offset)
    return mx.array(bits.reshape(tensor.shape)).view(mx.bfloat16)


def _quantization_table(quantized_bits: dict[str, int]) -> dict:
    common_bits = Counter(quantized_bits.values()).most_common(1)[0][0]
    table: dict = {"group_size": GGUF_GROUP_SIZE, "bits": common_bits}
    for layer, bits in sorted(quantized_bits.items()):
        if bits != common_bits:
            table[layer] = {"group_size": GGUF_GROUP_SIZE, "bits": bits}
    return table


def model_config(gguf: GGUFFile) -> dict:
    """An mlx-lm / Hugging Face style config.json for a llama-architecture GGUF."""
    meta = gguf.metadata
    arch = meta["general.architecture"]

    def get(key, default=None):
        return scalar(meta, f"{arch}.{key}", default)

    try:
        hidden = int(get("embedding_length"))
        heads = int(get("attention.head_count"))
        config = {
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "hidden_size": hidden,
            "num_hidden_layers": int(get("block_count")),
            "intermediate_size": int(get("feed_forward_length")),
            "num_attention_heads": heads,
            "num_key_value_heads": int(get("attention.head_count_kv", heads)),
            "head_dim": int(get("attention.key_length", hidden // heads)),
            "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon", 1e-5)),
            "rope_theta": float(get("rope.freq_base", 10000.0)),
            "max_position_embeddings": int(get("context_length", 4096)),
            "vocab_size": int(get("vocab_size", len(meta.get("tokenizer.ggml.tokens", [])))),
            "tie_word_embeddings": gguf.tensor("output.weight") is None,
        }
    except (TypeError, ValueError):
        raise UserError(f"{gguf.path}: its {arch} hyper-parameters are missing or malformed.") from None
    if get("rope.scaling.type") == "linear":
        config["rope_scaling"] = {"type": "linear", "factor": float(get("rope.scaling.factor", 1.0))}
    for key in ("bos", "eos"):
        token_id = scalar(meta, f"tokenizer.ggml.{key}_token_id")
        if token_id is not None:
            config[f"{key}_token_id"] = int(token_id)
    return config
