"""Tiny random llama models for fast tests, and GGUF files made from them.

The tokenizer is a real byte-level BPE trained here on a small corpus, with a
ChatML chat template, so everything that touches a tokenizer runs for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "What is the capital of France? The capital of France is Paris.",
    "def add(a, b):\n    return a + b\n",
    "Numbers like 12345 and 3.14159 appear in text, as do emoji 🙂 and accents: café, naïve.",
    "LoRA adapters train a small number of parameters on top of a frozen base model.",
    "日本語のテキストも少し含めます。",
]
TINY_CONFIG = {
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 512,
    "tie_word_embeddings": False,
}


def train_tokenizer(vocab_size: int = 384, specials: list[str] = SPECIAL_TOKENS):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer=trainer)
    return tokenizer


def make_tiny_model(
    folder: Path, seed: int = 0, tokenizer=None, tokenizer_config: dict | None = None, **overrides
) -> Path:
    """A random model (llama unless `model_type` says qwen2 or qwen3) with a real tokenizer, in mlx-lm's layout."""
    import importlib

    import mlx.core as mx
    from mlx.utils import tree_flatten

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer or train_tokenizer()
    tokenizer.save(str(folder / "tokenizer.json"))
    tokenizer_config = tokenizer_config or {
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "chat_template": CHATML_TEMPLATE,
    }
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False, **tokenizer_config}
        )
    )
    config = {**TINY_CONFIG, "vocab_size": tokenizer.get_vocab_size(), "eos_token_id": 2, **overrides}
    mx.random.seed(seed)
    if config["model_type"] == "qwen3":
        config.setdefault("head_dim", config["hidden_size"] // config["num_attention_heads"])
    from mlx_lm.utils import MODEL_REMAPPING

    module = MODEL_REMAPPING.get(config["model_type"], config["model_type"])  # mistral is llama's class
    architecture = importlib.import_module(f"mlx_lm.models.{module}")
    model = architecture.Model(architecture.ModelArgs.from_dict(config))
    # Random init at a scale that gives non-trivial, distinct logits.
    weights = {
        k: (mx.random.normal(v.shape) * 0.2 if v.ndim == 2 else mx.ones(v.shape) + 0.1 * mx.random.normal(v.shape))
        for k, v in tree_flatten(model.parameters())
    }
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


# GGUF --------------------------------------------------------------------------

_GGUF_PARTS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def gguf_name(hf_name: str) -> str:
    base, suffix = hf_name.rsplit(".", 1)
    top = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
    if base in top:
        return f"{top[base]}.{suffix}"
    _, _, layer, part = base.split(".", 3)
    return f"blk.{layer}.{_GGUF_PARTS[part]}.{suffix}"


def llama_cpp_permute(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """What llama.cpp's converter does to Q and K rows (its RoPE layout)."""
    rows = weight.shape[0]
    return weight.reshape(n_heads, 2, rows // n_heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_gguf(
    model_dir: Path,
    path: Path,
    matrix_type: str = "Q4_0",
    embedding_type: str | None = None,
    architecture: str = "llama",
    eot_token_id: int | None = None,
) -> Path:
    """Write `model_dir` as a GGUF file the way llama.cpp's converter would."""
    import gguf
    import mlx.core as mx

    config = json.loads((model_dir / "config.json").read_text())
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    weights = {k: np.array(v.astype(mx.float32)) for k, v in mx.load(str(model_dir / "model.safetensors")).items()}
    vocab = sorted(tokenizer["model"]["vocab"].items(), key=lambda item: item[1])
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config["rope_theta"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt2")
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types([3 if token in SPECIAL_TOKENS else 1 for token, _ in vocab])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)
    if eot_token_id is not None:
        writer.add_eot_token_id(eot_token_id)
    writer.add_chat_template(CHATML_TEMPLATE)
    heads = {"q_proj": config["num_attention_heads"], "k_proj": config["num_key_value_heads"]}
    for name, array in weights.items():
        part = name.rsplit(".", 2)[-2]
        if part in heads:
            array = llama_cpp_permute(array, heads[part])
        kind = (embedding_type or matrix_type) if "embed_tokens" in name else matrix_type
        _add_tensor(writer, gguf_name(name), array, kind if array.ndim == 2 else "F32")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add_tensor(writer, name: str, array: np.ndarray, kind: str) -> None:
    import gguf

    qtype = gguf.GGMLQuantizationType[kind]
    if kind == "F32":
        writer.add_tensor(name, array.astype(np.float32))
    elif kind == "F16":
        writer.add_tensor(name, array.astype(np.float16))
    else:
        try:
            packed = gguf.quants.quantize(array, qtype)
        except NotImplementedError:  # a type the gguf library cannot write (IQ4_NL): random blocks of its size
            block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
            rows, cols = array.shape
            packed = np.random.default_rng(0).integers(0, 256, (rows, cols // block_size * type_size), np.uint8)
        writer.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=qtype)


def reference_weights(gguf_path: Path, n_heads: int, n_kv_heads: int) -> dict[str, np.ndarray]:
    """Float weights from the GGUF, dequantized by the `gguf` package and mapped
    back to Hugging Face names, independently of lora-tui's importer."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))
    inverse = {v: k for k, v in _GGUF_PARTS.items()}
    top = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
    weights = {}
    for tensor in reader.tensors:
        array = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        base, suffix = tensor.name.rsplit(".", 1)
        if base in top:
            weights[f"{top[base]}.{suffix}"] = array
            continue
        _, layer, part = base.split(".")
        if part in ("attn_q", "attn_k"):
            heads = n_heads if part == "attn_q" else n_kv_heads
            rows = array.shape[0]
            array = array.reshape(heads, rows // heads // 2, 2, -1).transpose(0, 2, 1, 3).reshape(rows, -1)
        weights[f"model.layers.{layer}.{inverse[part]}.{suffix}"] = array
    return weights


def reference_logits(gguf_path: Path, config: dict, tokens: list[int]) -> np.ndarray:
    import mlx.core as mx
    from mlx_lm.models import llama

    weights = reference_weights(gguf_path, config["num_attention_heads"], config["num_key_value_heads"])
    args = {key: value for key, value in config.items() if key != "quantization"}
    model = llama.Model(llama.ModelArgs.from_dict(args))
    model.load_weights([(k, mx.array(v)) for k, v in weights.items()])
    return np.array(model(mx.array([tokens])).astype(mx.float32))


# Other families -------------------------------------------------------------------

# Per family: the mlx-lm model type, and config overrides that make a tiny model of it.
FAMILY_CONFIGS = {
    "llama": ("llama", {}),
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {"head_dim": 16}),
    # six layers: one global-attention layer in six, as llama.cpp assumes for gemma3
    "gemma3": (
        "gemma3_text",
        {
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "num_key_value_heads": 1,
            "num_hidden_layers": 6,
            "sliding_window": 8,
            "rms_norm_eps": 1e-6,
        },
    ),
    "phi3": ("phi3", {}),
}


# The byte-level pre-tokenizer each family's real files name (llama.cpp's `tokenizer.ggml.pre`).
FAMILY_PRE_TOKENIZERS = {
    "llama": "llama-bpe",
    "qwen2": "qwen2",
    "qwen3": "qwen2",
    "gemma3": "default",
    "phi3": "default",
}


def make_family_model(folder: Path, architecture: str, seed: int = 0, tie_word_embeddings: bool = False) -> Path:
    """A tiny random model of a GGUF architecture's mlx-lm family (see FAMILY_CONFIGS)."""
    import mlx.core as mx

    model_type, overrides = FAMILY_CONFIGS[architecture]
    folder = make_tiny_model(
        folder, seed=seed, model_type=model_type, tie_word_embeddings=tie_word_embeddings, **overrides
    )
    if tie_word_embeddings:  # Gemma's class has no such flag: it ties when lm_head is absent
        weights = mx.load(str(folder / "model.safetensors"))
        weights.pop("lm_head.weight", None)
        mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    return folder


def write_family_gguf(model_dir: Path, path: Path, architecture: str, tensor_type: str = "F32") -> Path:
    """Write a tiny model as llama.cpp's converter does for its architecture: tensor names from gguf-py's own
    map (llama.cpp's table, not lora-tui's), llama's Q/K row permutation, Gemma's norms with 1.0 added."""
    import gguf
    import mlx.core as mx

    config = json.loads((model_dir / "config.json").read_text())
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    weights = {k: np.array(v.astype(mx.float32)) for k, v in mx.load(str(model_dir / "model.safetensors")).items()}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[architecture.upper()], config["num_hidden_layers"])
    writer = gguf.GGUFWriter(str(path), architecture)
    _write_hyperparameters(writer, config, architecture)
    vocab = sorted(tokenizer["model"]["vocab"].items(), key=lambda item: item[1])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(FAMILY_PRE_TOKENIZERS[architecture])
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types([3 if token in SPECIAL_TOKENS else 1 for token, _ in vocab])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML_TEMPLATE)
    for name, array in weights.items():
        if name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        if architecture == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
            heads = config["num_attention_heads"] if "q_proj" in name else config["num_key_value_heads"]
            array = llama_cpp_permute(array, heads)
        if architecture == "gemma3" and name.endswith("norm.weight"):
            array = array + 1.0
        kind = tensor_type if array.ndim == 2 else "F32"
        _add_tensor(writer, names.get_name(name, try_suffixes=(".weight", ".bias")), array, kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _write_hyperparameters(writer, config: dict, architecture: str) -> None:
    heads = config["num_attention_heads"]
    writer.add_context_length(config.get("max_position_embeddings", 512))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config.get("rope_theta", 10000.0))
    writer.add_vocab_size(config["vocab_size"])
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    if architecture in ("qwen3", "gemma3"):
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if architecture == "gemma3":
        writer.add_sliding_window(config["sliding_window"])
    if architecture == "phi3":
        writer.add_rope_dimension_count(head_dim)
