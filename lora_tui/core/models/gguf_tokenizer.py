"""Rebuild a Hugging Face fast tokenizer from a GGUF file's metadata.

Two tokenizer families are stored in GGUF files of llama-architecture models:
- `gpt2`: byte-level BPE with explicit merges (Llama 3, SmolLM, Qwen, ...);
  how text is split before BPE is named by `tokenizer.ggml.pre`.
- `llama`: SentencePiece BPE with byte fallback (Llama 2, Mistral); GGUF keeps
  per-token scores instead of merges, so merges are derived from the scores.

The result is written as tokenizer.json + tokenizer_config.json, which
mlx-lm (through transformers' PreTrainedTokenizerFast) loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from lora_tui.core.models.gguf import scalar

# GGUF token types (llama.cpp's llama_token_type).
_CONTROL, _USER_DEFINED = 3, 4

_GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# llama.cpp's splitting for `pre = "default"` (and a file that names none): four expressions, one after another.
_LLAMA_CPP_DEFAULT_PATTERNS = (
    r"[\p{P}\$\+<=>\^~\|]+",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
    r"\p{N}+",
    r"[0-9][0-9][0-9]",
)
_QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


class TokenizerImportError(Exception):
    pass


def _split(pattern: str) -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)


def _byte_level_pre_tokenizer(pre: str) -> tuple[pre_tokenizers.PreTokenizer, bool]:
    """The pre-tokenizer for llama.cpp's `tokenizer.ggml.pre` name, and whether
    merges are skipped for whole-vocabulary words (Llama 3's `ignore_merges`)."""
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if pre in ("llama-bpe", "llama3", "llama-v3", "smaug-bpe"):
        return pre_tokenizers.Sequence([_split(_LLAMA3_PATTERN), byte_level]), True
    if pre in ("qwen2", "stablelm2"):
        return pre_tokenizers.Sequence([_split(_QWEN2_PATTERN), byte_level]), False
    if pre in ("smollm", "starcoder", "refact", "codeshell"):
        digits = pre_tokenizers.Digits(individual_digits=True)
        return pre_tokenizers.Sequence([digits, _split(_GPT2_PATTERN), byte_level]), False
    if pre in ("", "default"):
        return pre_tokenizers.Sequence([*map(_split, _LLAMA_CPP_DEFAULT_PATTERNS), byte_level]), False
    if pre in ("gpt2", "gpt-2", "mpt", "olmo"):
        return pre_tokenizers.Sequence([_split(_GPT2_PATTERN), byte_level]), False
    raise TokenizerImportError(f"its tokenizer pre-processing {pre!r} is not supported")


def _gpt2_tokenizer(metadata: dict, tokens: list[str]) -> Tokenizer:
    merges = [tuple(m.split(" ", 1)) for m in metadata.get("tokenizer.ggml.merges", [])]
    if not merges:
        raise TokenizerImportError("its byte-level BPE tokenizer has no merges")
    pre_tokenizer, ignore_merges = _byte_level_pre_tokenizer(str(metadata.get("tokenizer.ggml.pre", "")))
    vocab = {token: index for index, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=ignore_merges))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _sentencepiece_merges(tokens: list[str], scores: np.ndarray) -> list[tuple[str, str]]:
    """Merges ranked the way SentencePiece applies them: higher-scored pieces first."""
    vocab = {token: index for index, token in enumerate(tokens)}
    candidates = []
    for piece, index in vocab.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                candidates.append((-float(scores[index]), index, left, right))
    candidates.sort()
    return [(left, right) for _, _, left, right in candidates]


def _sentencepiece_tokenizer(metadata: dict, tokens: list[str]) -> Tokenizer:
    scores = metadata.get("tokenizer.ggml.scores")
    if scores is None:
        raise TokenizerImportError("its SentencePiece tokenizer has no token scores")
    unk_id = int(scalar(metadata, "tokenizer.ggml.unknown_token_id", 0))
    vocab = {token: index for index, token in enumerate(tokens)}
    bpe = models.BPE(
        vocab=vocab,
        merges=_sentencepiece_merges(tokens, np.asarray(scores)),
        unk_token=tokens[unk_id],
        byte_fallback=True,
        fuse_unk=True,
    )
    tokenizer = Tokenizer(bpe)
    # Llama 2 and Mistral prepend a space to the text (and decoding strips it again); Gemma does neither.
    adds_prefix = bool(scalar(metadata, "tokenizer.ggml.add_space_prefix", True))
    prefix = [normalizers.Prepend("▁")] if adds_prefix else []
    tokenizer.normalizer = normalizers.Sequence([*prefix, normalizers.Replace(" ", "▁")])
    strip = [decoders.Strip(" ", 1, 0)] if adds_prefix else []
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), *strip]
    tokenizer.decoder = decoders.Sequence(steps)
    return tokenizer


def build_tokenizer(metadata: dict) -> Tokenizer:
    tokens = metadata.get("tokenizer.ggml.tokens")
    if not tokens:
        raise TokenizerImportError("it has no tokenizer vocabulary")
    kind = str(metadata.get("tokenizer.ggml.model", ""))
    if kind == "gpt2":
        tokenizer = _gpt2_tokenizer(metadata, tokens)
    elif kind == "llama":
        tokenizer = _sentencepiece_tokenizer(metadata, tokens)
    else:
        raise TokenizerImportError(f"its tokenizer type {kind!r} is not supported (gpt2 and llama are)")
    _add_special_tokens(tokenizer, metadata, tokens)
    _add_bos_processor(tokenizer, metadata, tokens)
    return tokenizer


def _add_special_tokens(tokenizer: Tokenizer, metadata: dict, tokens: list[str]) -> None:
    types = metadata.get("tokenizer.ggml.token_type")
    if types is None:
        return
    special = [AddedToken(tokens[i], special=True, normalized=False) for i in np.flatnonzero(types == _CONTROL)]
    user = [AddedToken(tokens[i], special=False, normalized=False) for i in np.flatnonzero(types == _USER_DEFINED)]
    tokenizer.add_special_tokens(special)
    tokenizer.add_tokens(user)


def _add_bos_processor(tokenizer: Tokenizer, metadata: dict, tokens: list[str]) -> None:
    bos_id = scalar(metadata, "tokenizer.ggml.bos_token_id")
    default_add_bos = metadata.get("tokenizer.ggml.model") == "llama"
    if bos_id is None or not scalar(metadata, "tokenizer.ggml.add_bos_token", default_add_bos):
        return
    bos = tokens[int(bos_id)]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, int(bos_id))]
    )


def special_token(metadata: dict, tokens: list[str], key: str) -> str | None:
    index = scalar(metadata, f"tokenizer.ggml.{key}_token_id")
    return tokens[int(index)] if index is not None and int(index) < len(tokens) else None


def write_tokenizer(metadata: dict, folder: Path) -> None:
    """Write tokenizer.json and tokenizer_config.json for the GGUF's tokenizer."""
    tokenizer = build_tokenizer(metadata)
    tokens = metadata["tokenizer.ggml.tokens"]
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(
            scalar(metadata, f"{metadata.get('general.architecture', 'llama')}.context_length", 4096)
        ),
    }
    for key in ("bos", "eos", "unknown", "padding"):
        token = special_token(metadata, tokens, key)
        if token is not None:
            config[{"unknown": "unk_token", "padding": "pad_token"}.get(key, f"{key}_token")] = token
    template = metadata.get("tokenizer.chat_template")
    if template:
        config["chat_template"] = str(template)
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
