"""Gemma 3 270M, Q4_K_M, the real file: imported, then judged by llama.cpp on the same file."""

import json

import mlx.core as mx
import numpy as np
import pytest
from llamajudge import load_gguf

from lora_tui.core.models.store import expand_for_cpu, load_model

pytestmark = pytest.mark.e2e
VARIED_TEXTS = [
    "def add(a, b):\n    return a + b  # 12345 and 3.14159",
    "Café naïve résumé — Ünïcödé; ß and Ø.",
    "emoji 🙂🚀 and 日本語のテキスト",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "   leading spaces\n\n\ttabs\r\n  trailing  ",
    '{"key": [1, 2.5, null], "url": "https://example.com/a?b=c"}',
]
PROMPTS = ["The capital of France is", "def fibonacci(n):", "The three primary colors are"]


@pytest.fixture(scope="module")
def judge(gemma_gguf):
    return load_gguf(gemma_gguf, n_ctx=256, logits_all=True, verbose=False)


@pytest.fixture(scope="module")
def gemma(gemma_model_dir):
    model, tokenizer = load_model(gemma_model_dir)
    expand_for_cpu(model)  # as chat and training load it here
    return model, tokenizer


def test_import_keeps_the_quantized_blocks_and_says_what_changed(gemma_import):
    folder, said = gemma_import
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "gemma3_text"
    assert config["num_hidden_layers"] == 18 and config["sliding_window"] == 512
    assert "Kept as stored: 109 F32, 27 Q4_K, 81 Q5_0, 10 Q8_0." in said
    assert any(line.startswith("Re-quantized (MLX has no 16-value groups): 9 Q6_K -> 8-bit") for line in said)
    weights = mx.load(str(folder / "model.safetensors"))
    assert weights["model.layers.0.self_attn.o_proj.weight"].dtype == mx.uint32  # Q4_K, still 4-bit
    assert config["quantization"]["bits"] == 5  # Q5_0, the file's most common type


def test_tokens_are_llama_cpps(gemma, judge):
    _, tokenizer = gemma
    for text in VARIED_TEXTS:
        assert tokenizer.encode(text) == judge.tokenize(text.encode(), add_bos=True, special=True), text


def test_greedy_continuations_agree_with_llama_cpp(gemma, judge):
    """Along llama.cpp's own greedy continuation, the imported model picks the same next token.

    llama.cpp rounds activations to 8 bits for its quantized products, so near-ties may go the
    other way now and then; a wrong mapping would disagree from the first token on.
    """
    model, tokenizer = gemma
    for prompt in PROMPTS:
        judge.reset()
        theirs = judge(prompt, max_tokens=24, temperature=0.0)["choices"][0]["text"]
        prompt_ids = tokenizer.encode(prompt)
        continuation = tokenizer.encode(theirs, add_special_tokens=False)
        logits = model(mx.array([prompt_ids + continuation]))[0]
        ours = np.array(mx.argmax(logits[len(prompt_ids) - 1 : -1], axis=-1)).tolist()
        agreement = np.mean(np.array(ours) == np.array(continuation))
        assert ours[:8] == continuation[:8], (prompt, theirs, tokenizer.decode(ours))
        assert agreement >= 0.9, (prompt, theirs, tokenizer.decode(ours))
