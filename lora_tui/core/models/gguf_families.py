"""The model families GGUF import reads: how each one's tensors and hyper-parameters map to mlx-lm.

One `Family` per GGUF architecture, each stating only what differs from the
llama layout: extra tensor names, Q/K row permutation, norm offsets, and the
config keys its mlx-lm model class needs. The mappings follow llama.cpp's
converter (convert_hf_to_gguf.py), read in reverse.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from lora_tui.core.models.gguf import GGUFFile, scalar

_COMMON_LAYER_PARTS = {
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


class ConfigError(Exception):
    """A hyper-parameter the family needs is missing or malformed."""


@dataclass(frozen=True)
class Family:
    architecture: str  # general.architecture in the GGUF header
    model_type: str  # mlx-lm's module under mlx_lm.models
    hf_class: str
    layer_parts: dict[str, str] = field(default_factory=lambda: dict(_COMMON_LAYER_PARTS))
    # llama.cpp reorders Q and K rows for its RoPE layout in llama-architecture files only.
    permutes_qk: bool = False
    # llama.cpp stores Gemma's RMSNorm weights with the 1.0 that mlx-lm adds at run time already added.
    norm_offset: float = 0.0
    # Activations take the embedding's dtype; Gemma's overflow float16 (its first position reaches ~1e5).
    float32_activations: bool = False
    # Tensors llama.cpp derives or keeps for itself; not weights of the mlx-lm model.
    skipped: tuple[str, ...] = ("rope_freqs",)
    extra_config: Callable[[Callable], dict] = lambda get: {}
    tensor_config: Callable[[GGUFFile], dict] = lambda gguf: {}  # config that the file keeps as tensors

    def mlx_name(self, gguf_base: str) -> str | None:
        """`blk.3.attn_q` -> `model.layers.3.self_attn.q_proj`; None for tensors mlx-lm does not keep."""
        if gguf_base in self.skipped:
            return None
        if gguf_base in _TOP_LEVEL:
            return _TOP_LEVEL[gguf_base]
        match = re.fullmatch(r"blk\.(\d+)\.(\w+)", gguf_base)
        if match and match.group(2) in self.layer_parts:
            return f"model.layers.{match.group(1)}.{self.layer_parts[match.group(2)]}"
        return None

    def is_norm(self, base: str) -> bool:
        """A norm's weight, in GGUF's names (blk.0.attn_norm) or Hugging Face's (...input_layernorm) alike."""
        return base.endswith("norm")

    def config(self, gguf: GGUFFile) -> dict:
        """An mlx-lm / Hugging Face style config.json from the header."""
        meta = gguf.metadata

        def get(key, default=None):
            value = scalar(meta, f"{self.architecture}.{key}", default)
            if value is None:
                raise ConfigError(key)
            return value

        try:
            hidden = int(get("embedding_length"))
            heads = int(get("attention.head_count"))
            config = {
                "model_type": self.model_type,
                "architectures": [self.hf_class],
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
            if get("rope.scaling.type", "none") == "linear":
                config["rope_scaling"] = {"type": "linear", "factor": float(get("rope.scaling.factor", 1.0))}
            config.update(self.extra_config(get))
            config.update(self.tensor_config(gguf))
        except (TypeError, ValueError, ConfigError) as exc:
            raise ConfigError(f"its {self.architecture} hyper-parameters are missing or malformed ({exc})") from None
        for key in ("bos", "eos"):
            token_id = scalar(meta, f"tokenizer.ggml.{key}_token_id")
            if token_id is not None:
                config[f"{key}_token_id"] = int(token_id)
        # An instruct model ends a turn on its own token (Gemma's <end_of_turn>, ChatML's <|im_end|>), which
        # llama.cpp stops at as it does at EOS; mlx-lm stops at every id listed here.
        end_of_turn = scalar(meta, "tokenizer.ggml.eot_token_id")
        if end_of_turn is not None and int(end_of_turn) != config.get("eos_token_id"):
            config["eos_token_id"] = (
                [config["eos_token_id"], int(end_of_turn)] if "eos_token_id" in config else int(end_of_turn)
            )
        return config


def _gemma3_config(get) -> dict:
    hidden, heads, layers = int(get("embedding_length")), int(get("attention.head_count")), int(get("block_count"))
    head_dim = int(get("attention.key_length", 256))
    return {
        "sliding_window": int(get("attention.sliding_window", 4096)),
        # Not in GGUF headers: llama.cpp fixes them for gemma3 (one global layer in six, local RoPE base 10k).
        "sliding_window_pattern": 6,
        "rope_local_base_freq": 10000.0,
        # Gemma 3 27B scales queries by hidden/heads, every other size by the head dim (as llama.cpp does).
        "query_pre_attn_scalar": hidden // heads if layers == 62 else head_dim,
    }


def _phi3_config(get) -> dict:
    head_dim = int(get("embedding_length")) // int(get("attention.head_count"))
    rotary = int(get("rope.dimension_count", head_dim))
    return {
        "partial_rotary_factor": rotary / head_dim,
        "original_max_position_embeddings": int(get("rope.scaling.original_context_length", get("context_length"))),
    }


def _phi3_long_rope(gguf: GGUFFile) -> dict:
    """Phi-3's 128k models keep their LongRoPE factors as two F32 tensors; mlx-lm wants them in rope_scaling."""
    import numpy as np

    factors = {}
    for key in ("long", "short"):
        tensor = gguf.tensor(f"rope_factors_{key}.weight")
        if tensor is None or tensor.type_name != "F32":
            return {}
        factors[f"{key}_factor"] = np.frombuffer(gguf.reader(tensor)(0, tensor.nbytes), np.float32).tolist()
    return {"rope_scaling": {"type": "longrope", **factors}}


FAMILIES = {
    family.architecture: family
    for family in (
        Family("llama", "llama", "LlamaForCausalLM", permutes_qk=True),
        Family("qwen2", "qwen2", "Qwen2ForCausalLM"),
        Family(
            "qwen3",
            "qwen3",
            "Qwen3ForCausalLM",
            layer_parts={**_COMMON_LAYER_PARTS, "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"},
        ),
        Family(
            "gemma3",
            "gemma3_text",
            "Gemma3ForCausalLM",
            layer_parts={
                **_COMMON_LAYER_PARTS,
                "attn_q_norm": "self_attn.q_norm",
                "attn_k_norm": "self_attn.k_norm",
                "post_attention_norm": "post_attention_layernorm",
                "ffn_norm": "pre_feedforward_layernorm",
                "post_ffw_norm": "post_feedforward_layernorm",
            },
            norm_offset=1.0,
            float32_activations=True,
            extra_config=_gemma3_config,
        ),
        Family(
            "phi3",
            "phi3",
            "Phi3ForCausalLM",
            layer_parts={
                **_COMMON_LAYER_PARTS,
                "attn_qkv": "self_attn.qkv_proj",
                "ffn_up": "mlp.gate_up_proj",
            },
            skipped=("rope_freqs", "rope_factors_long", "rope_factors_short"),  # their values go in the config
            extra_config=_phi3_config,
            tensor_config=_phi3_long_rope,
        ),
    )
}
