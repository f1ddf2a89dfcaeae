"""The SentencePiece (`llama`) tokenizer family of Llama 2 and Mistral GGUF files."""

import numpy as np

from lora_tui.core.models.gguf_tokenizer import build_tokenizer


def _sentencepiece_metadata():
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    words = [
        "▁",
        "h",
        "e",
        "l",
        "o",
        "w",
        "r",
        "d",
        "▁h",
        "he",
        "ll",
        "lo",
        "▁he",
        "llo",
        "▁hello",
        "▁w",
        "or",
        "▁wor",
        "ld",
        "▁world",
    ]
    tokens = pieces + words
    # Longer pieces score higher, as in a trained SentencePiece BPE vocabulary.
    scores = np.array([0.0] * len(pieces) + [-100.0 + len(w) * 10 for w in words], dtype=np.float32)
    types = np.array([2, 3, 3] + [6] * 256 + [1] * len(words), dtype=np.int32)
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.bos_token_id": np.uint32(1),
        "tokenizer.ggml.eos_token_id": np.uint32(2),
        "tokenizer.ggml.unknown_token_id": np.uint32(0),
    }


def test_sentencepiece_encodes_words_whole_and_falls_back_to_bytes():
    metadata = _sentencepiece_metadata()
    tokenizer = build_tokenizer(metadata)
    tokens = metadata["tokenizer.ggml.tokens"]
    encoding = tokenizer.encode("hello world")
    assert [tokens[i] for i in encoding.ids] == ["<s>", "▁hello", "▁world"]
    unknown = tokenizer.encode("hi!")
    assert "<0x21>" in [tokens[i] for i in unknown.ids]  # '!' has no piece: byte fallback
    assert tokenizer.decode(encoding.ids, skip_special_tokens=True) == "hello world"
    assert tokenizer.decode(unknown.ids, skip_special_tokens=True) == "hi!"
