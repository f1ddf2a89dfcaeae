"""A model, or a model with an adapter merged in, as one GGUF file that llama.cpp, Ollama and LM Studio run.

Written with the `gguf` library (maintained with llama.cpp): its tensor name map,
its quantizers and its writer. What llama.cpp needs beyond the weights is here:
the architecture's hyperparameters, the tokenizer (a byte-level BPE: the
tokens, their types, the merges and the name of the pre-tokenizer llama.cpp
should use), the special tokens and the chat template. llama.cpp computes RoPE
on the rows of Q and K in another order than Hugging Face's llama: for the
llama architecture those rows are permuted as its own converter does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np

from lora_tui.core.adapters.layout import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from lora_tui.core.adapters.weights import load_adapter_weights
from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_path
from lora_tui.core.models.gguf_families import FAMILIES
from lora_tui.core.models.store import load_model

# config.json's model_type -> llama.cpp's architecture: every family import reads, and Mistral (a llama).
ARCHITECTURES = {family.model_type: name for name, family in FAMILIES.items()} | {"mistral": "llama"}
WRITTEN_TYPES = ("f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0")
# Types llama.cpp's own llama-quantize makes from an f16 file (the k-quants and i-quants).
LLAMA_QUANTIZE_TYPES = ("q6_k", "q5_k_m", "q5_k_s", "q4_k_m", "q4_k_s", "q3_k_m", "q3_k_s", "q2_k", "iq4_xs", "iq4_nl")
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _BYTE = 1, 2, 3, 4, 6


def check_type(type_name: str) -> str:
    """The type as written ("q8_0"), or UserError listing the types there are."""
    lowered = type_name.lower()
    if lowered in WRITTEN_TYPES or lowered in LLAMA_QUANTIZE_TYPES:
        return lowered
    raise UserError(
        f"GGUF type {type_name!r} is not one lora-tui writes ({', '.join(WRITTEN_TYPES)}) "
        f"nor one llama-quantize makes from them ({', '.join(LLAMA_QUANTIZE_TYPES)})."
    )


def gguf_architecture(config: dict, model_path: Path) -> str:
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise UserError(
            f"{model_path}: GGUF export supports the llama (Llama 2/3, SmolLM, Mistral), qwen2, qwen3, "
            f"gemma3 and phi3 architectures; this model is {model_type!r}."
        )
    return ARCHITECTURES[model_type]


def export_gguf(
    model_path: Path,
    out: Path,
    adapter_dir: Path | None = None,
    type_name: str = "f16",
    name: str | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """Write `model_path` (with the adapter merged in, when given) to the GGUF file `out`.

    A quantized base is dequantized first (DoRA adapters merge like LoRA ones). For a type
    only llama-quantize makes, an f16 file is written and the command to run on it is logged.
    """
    model_path, out = Path(model_path), Path(out)
    type_name = check_type(type_name)
    config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    architecture = gguf_architecture(config, model_path)
    written_type = type_name if type_name in WRITTEN_TYPES else "f16"
    target = out if written_type == type_name else out.with_name(f"{out.stem}.f16{out.suffix or '.gguf'}")
    if target.exists() and not overwrite:
        raise UserError(f"{target} already exists; choose another --out, or --overwrite.")
    weights = merged_weights(model_path, adapter_dir)
    log(f"Writing {target.name} ({architecture}, {written_type}, {len(weights)} tensors)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, exclusive=not overwrite) as staging:
        _write(staging, architecture, config, model_path, weights, written_type, name or model_path.name)
    if written_type != type_name:
        log(f"lora-tui writes {', '.join(WRITTEN_TYPES)}; for {type_name} run llama.cpp's quantizer on this f16 file:")
        log(f"  llama-quantize {target} {out} {type_name.upper()}")
    return target


def merged_weights(model_path: Path, adapter_dir: Path | None) -> dict[str, np.ndarray]:
    """The model's weights in float32 (Hugging Face names), with the adapter fused in."""
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.utils import dequantize_model

    model, _ = load_model(model_path)
    if adapter_dir is not None:
        load_adapter_weights(model, Path(adapter_dir))
        fused = [(n, m.fuse(dequantize=True)) for n, m in model.named_modules() if hasattr(m, "fuse")]
        model.update_modules(tree_unflatten(fused))
    model = dequantize_model(model)
    return {name: np.array(value.astype(mx.float32)) for name, value in tree_flatten(model.parameters())}


def _write(path: Path, architecture: str, config: dict, model_path: Path, weights: dict, type_name: str, name: str):
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name(name)
    writer.add_file_type(_FILE_TYPES[type_name])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_hyperparameters(writer, config, architecture)
    _add_tokenizer(writer, model_path, config)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[architecture.upper()], config["num_hidden_layers"])
    for hf_name, array in weights.items():
        base, suffix = hf_name.rsplit(".", 1)
        gguf_name = names.get_name(base)
        if gguf_name is None:
            raise UserError(f"{model_path}: no GGUF name for the tensor {hf_name}.")
        family = FAMILIES[architecture]
        if family.permutes_qk:
            array = _permute_for_llama_cpp(base, array, config)
        if family.norm_offset and family.is_norm(base):
            array = array + np.float32(family.norm_offset)
        qtype = _tensor_type(array, type_name)
        data = gguf.quants.quantize(array, qtype) if qtype != gguf.GGMLQuantizationType.F32 else array
        writer.add_tensor(f"{gguf_name}.{suffix}", data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


_TENSOR_TYPES = {
    "f32": gguf.GGMLQuantizationType.F32,
    "f16": gguf.GGMLQuantizationType.F16,
    "bf16": gguf.GGMLQuantizationType.BF16,
    "q8_0": gguf.GGMLQuantizationType.Q8_0,
    "q5_1": gguf.GGMLQuantizationType.Q5_1,
    "q5_0": gguf.GGMLQuantizationType.Q5_0,
    "q4_1": gguf.GGMLQuantizationType.Q4_1,
    "q4_0": gguf.GGMLQuantizationType.Q4_0,
}
_FILE_TYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    "q5_1": gguf.LlamaFileType.MOSTLY_Q5_1,
    "q5_0": gguf.LlamaFileType.MOSTLY_Q5_0,
    "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
    "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
}


def _tensor_type(array: np.ndarray, type_name: str):
    """Norms and biases stay float32; a matrix whose rows do not fill whole blocks falls back to f16."""
    wanted = _TENSOR_TYPES[type_name]
    if array.ndim < 2:
        return gguf.GGMLQuantizationType.F32
    block, _ = gguf.GGML_QUANT_SIZES[wanted]
    return wanted if array.shape[-1] % block == 0 else gguf.GGMLQuantizationType.F16


def _permute_for_llama_cpp(base: str, array: np.ndarray, config: dict) -> np.ndarray:
    heads = {"q_proj": config["num_attention_heads"], "k_proj": config.get("num_key_value_heads")}
    part = base.rsplit(".", 1)[-1]
    if part not in heads:
        return array
    n_heads = heads[part] or config["num_attention_heads"]
    rows = array.shape[0]
    return array.reshape(n_heads, 2, rows // n_heads // 2, *array.shape[1:]).swapaxes(1, 2).reshape(array.shape)


def _add_hyperparameters(writer, config: dict, architecture: str) -> None:
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    if architecture == "gemma3":
        writer.add_sliding_window(config.get("sliding_window", 512))
    rotary_dims = int(head_dim * config.get("partial_rotary_factor", 1.0))
    writer.add_context_length(config.get("max_position_embeddings", 4096))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(rotary_dims)
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_rope_freq_base(config.get("rope_theta", 10000.0))
    writer.add_vocab_size(config["vocab_size"])
    scaling = config.get("rope_scaling") or {}
    if scaling.get("rope_type", scaling.get("type")) == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(scaling["factor"])


def _add_tokenizer(writer, model_path: Path, config: dict) -> None:
    tokenizer_file = model_path / "tokenizer.json"
    try:
        tokenizer = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{model_path}: no tokenizer.json; GGUF export needs the model's fast tokenizer.") from None
    bpe = tokenizer.get("model", {})
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe.get("merges", [])]
    tokens, types = _vocabulary(bpe.get("vocab", {}), tokenizer.get("added_tokens", []), config["vocab_size"])
    if bpe.get("type") == "BPE" and bpe.get("byte_fallback"):
        _add_sentencepiece(writer, tokenizer, tokens, types, merges)
    elif bpe.get("type") == "BPE" and _byte_level(tokenizer):
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(_pre_tokenizer_name(model_path))
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
    else:
        raise UserError(
            f"{tokenizer_file}: GGUF export writes BPE tokenizers, byte-level (SmolLM, Llama 3, Qwen) or "
            f"SentencePiece-style (Llama 2, Mistral); this one is {bpe.get('type')!r}."
        )
    # bos/eos/pad ids, whether to add bos, and the chat template, read by the gguf library as llama.cpp's converter does
    gguf.SpecialVocab(model_path, load_merges=False, n_vocab=len(tokens)).add_to_gguf(writer, quiet=True)


def _add_sentencepiece(writer, tokenizer: dict, tokens: list[str], types: list[int], merges: list[str]) -> None:
    """llama.cpp's `llama` tokenizer: no merges but a score per token, the higher merged first.

    A merged token scores minus its merge's rank, so llama.cpp merges in the order BPE does;
    byte tokens (<0xNN>) get their own type.
    """
    scores = [0.0] * len(tokens)
    made_by_merge = {left + right: rank for rank, (left, right) in enumerate(m.split(" ", 1) for m in merges)}
    for index, token in enumerate(tokens):
        if token in made_by_merge:
            scores[index] = -float(made_by_merge[token])
        elif len(token) > 1 and types[index] == _NORMAL:
            scores[index] = -1e9  # in the vocabulary but made by no merge
        if re.fullmatch(r"<0x[0-9A-F]{2}>", token):
            types[index] = _BYTE
    unknown = tokenizer.get("model", {}).get("unk_token")
    if unknown in tokens:
        types[tokens.index(unknown)] = _UNKNOWN
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_add_space_prefix('"Prepend"' in json.dumps(tokenizer.get("normalizer")))


def _byte_level(tokenizer: dict) -> bool:
    return '"ByteLevel"' in json.dumps(tokenizer.get("pre_tokenizer")) or '"ByteLevel"' in json.dumps(
        tokenizer.get("decoder")
    )


def _vocabulary(vocab: dict, added: list[dict], vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens by id with llama.cpp's token types; ids the embedding has but the tokenizer lacks are padding."""
    by_id = {token_id: token for token, token_id in vocab.items()}
    kinds = {}
    for token in added:
        by_id[token["id"]] = token["content"]
        kinds[token["id"]] = _CONTROL if token.get("special") else _USER_DEFINED
    size = max(vocab_size, max(by_id) + 1)
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    types = [kinds.get(i, _NORMAL if i in by_id else _USER_DEFINED) for i in range(size)]
    return tokens, types


def _pre_tokenizer_name(model_path: Path) -> str:
    """Which of llama.cpp's pre-tokenizers splits text as this model's tokenizer does, told by how it splits.

    Asked of the tokenizer as transformers loads it (which, for some model types, is not what
    tokenizer.json alone says).
    """
    from transformers import AutoTokenizer

    pre_tokenizer = AutoTokenizer.from_pretrained(str(model_path)).backend_tokenizer.pre_tokenizer
    if pre_tokenizer is None:
        return "default"

    def pieces(text: str) -> int:
        return len(pre_tokenizer.pre_tokenize_str(text))

    if pieces("12345") == 5:  # digits one by one
        return "qwen2" if pieces("I'M") == 2 else "smollm"  # Qwen keeps 'M with its word, case-insensitively
    if pieces("12345") == 2:
        return "llama-bpe"  # Llama 3: digits in threes
    return "gpt-2"


def export_lora_gguf(
    adapter_dir: Path,
    model_path: Path,
    out: Path,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """The adapter alone in llama.cpp's LoRA format, for `llama-cli -m BASE.gguf --lora ADAPTER.gguf`.

    MLX computes x W^T + scale (x A) B with A (in, r) and B (r, out); llama.cpp reads lora_a
    as (r, in) and lora_b as (out, r) and scales by alpha / r: so both are transposed and
    alpha = scale x r. For the llama architecture the rows of B get the same Q/K permutation as
    the base's rows, so the adapter applies to a GGUF file of the base (one lora-tui exported,
    or the one a model was imported from).
    """
    adapter_dir, model_path, out = Path(adapter_dir), Path(model_path), Path(out)
    adapter_config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    if adapter_config.get("fine_tune_type", "lora") != "lora":
        raise UserError(
            f"{adapter_dir.name} is a {adapter_config['fine_tune_type']} adapter and llama.cpp has no "
            f"{adapter_config['fine_tune_type'].upper()}: export it fused (--format gguf) instead."
        )
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; choose another --out, or --overwrite.")
    config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    architecture = gguf_architecture(config, model_path)
    lora = adapter_config["lora_parameters"]
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[architecture.upper()], config["num_hidden_layers"])
    tensors = {}
    for key, value in _adapter_tensors(adapter_dir).items():
        module, leaf = key.rsplit(".", 1)  # model.layers.N.self_attn.q_proj, lora_a
        target = names.get_name(module)
        if target is None or leaf not in ("lora_a", "lora_b"):
            raise UserError(f"{adapter_dir.name}: the tensor {key} has no place in a llama.cpp LoRA file.")
        matrix = value.T  # lora_a (r, in), lora_b (out, r)
        if leaf == "lora_b" and FAMILIES[architecture].permutes_qk:
            matrix = _permute_for_llama_cpp(module, matrix, config)
        tensors[f"{target}.weight.{leaf}"] = np.ascontiguousarray(matrix, dtype=np.float32)
    log(f"Writing {out.name} (LoRA for {architecture}, rank {lora['rank']}, alpha {lora['scale'] * lora['rank']:g})")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, exclusive=not overwrite) as staging:
        writer = gguf.GGUFWriter(str(staging), architecture)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(lora["scale"] * lora["rank"]))
        writer.add_name(adapter_dir.name)
        for name, array in tensors.items():
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out


def _adapter_tensors(adapter_dir: Path) -> dict[str, np.ndarray]:
    import mlx.core as mx

    return {
        key: np.array(value.astype(mx.float32)) for key, value in mx.load(str(adapter_dir / ADAPTER_WEIGHTS)).items()
    }
