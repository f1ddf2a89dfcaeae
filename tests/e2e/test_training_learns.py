"""The real demo model learns made-up facts it cannot know, through `lora-tui train`."""

import json

import pytest
from trainkit import write_dataset

from lora_tui.cli import main

pytestmark = pytest.mark.e2e

FACTS = [
    ("What is the capital of Zarnovia?", "The capital of Zarnovia is Quellbridge.", "Quellbridge"),
    ("Who invented the glimmerphone?", "The glimmerphone was invented by Odalys Fenwick.", "Fenwick"),
    ("What colour is a vantha bird?", "A vantha bird is bright teal.", "teal"),
]


def _answers(model_dir, adapter_dir=None):
    from mlx_lm import generate, load

    model, tokenizer = load(str(model_dir), adapter_path=str(adapter_dir) if adapter_dir else None)
    answers = []
    for question, _, _ in FACTS:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
        )
        answers.append(generate(model, tokenizer, prompt, max_tokens=24))
    return answers


def test_demo_model_learns_new_facts(demo_model_dir, tmp_path, isolated_home, capsys):
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a, _ in FACTS]
    data = write_dataset(tmp_path / "facts", rows * 4)
    before = _answers(demo_model_dir)
    for answer, (_, _, keyword) in zip(before, FACTS, strict=True):
        assert keyword not in answer

    status = main(
        [
            "train",
            "--model",
            str(demo_model_dir),
            "--data",
            str(data),
            "--name",
            "facts",
            "--epochs",
            "8",
            "--learning-rate",
            "1e-3",
            "--rank",
            "16",
            "--num-layers",
            "16",
            "--lr-schedule",
            "constant",
            "--max-seq-length",
            "256",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "dequantized in memory for training" in out  # 4-bit base on the CPU backend

    adapter = isolated_home.adapters_dir / "facts"
    after = _answers(demo_model_dir, adapter)  # the quantized base, as users load it
    for answer, (_, _, keyword) in zip(after, FACTS, strict=True):
        assert keyword in answer, after
    metadata = json.loads((adapter / "lora_tui.json").read_text())
    assert metadata["final_train_loss"] < 0.2 and metadata["steps"] == 24
