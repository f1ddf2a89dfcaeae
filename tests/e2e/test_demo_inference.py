"""Generation, adapter switching, fuse and export on the real demo model with a real adapter."""

import json
import os
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest
from generation import complete

from lora_tui.core.adapters.convert import export_peft, fuse_adapter
from lora_tui.core.inference.generate import Generator, Sampling, Turn

pytestmark = pytest.mark.e2e
GREEDY = Sampling(temperature=0.0, max_tokens=16)


def test_demo_generation_streams_and_switches(demo_model_dir, codeword_adapter):
    generator = Generator(demo_model_dir)
    text, stats = complete(generator, [Turn("user", "What is the capital of France?")], GREEDY)
    assert "Paris" in text and stats.tokens_per_second > 0 and stats.time_to_first_token > 0
    switch_seconds = generator.use_adapter(codeword_adapter)
    assert switch_seconds < 2.0
    adapted, _ = complete(generator, [Turn("user", "Say the code word.")], GREEDY)
    generator.use_adapter(None)
    base, _ = complete(generator, [Turn("user", "Say the code word.")], GREEDY)
    assert adapted != base


def test_demo_chat_command_streams_tokens(demo_model_dir, tmp_path):
    env = {**os.environ, "LORA_TUI_HOME": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lora_tui",
            "chat",
            "--model",
            str(demo_model_dir),
            "--temp",
            "0",
            "--max-tokens",
            "12",
            "--prompt",
            "What is the capital of France?",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout and "tok/s" in result.stderr


def test_demo_fuse_equals_base_plus_adapter(demo_model_dir, codeword_adapter, tmp_path):
    from mlx_lm import load

    out = fuse_adapter(codeword_adapter.parent, codeword_adapter.name, demo_model_dir, tmp_path / "fused")
    fused, tokenizer = load(str(out))
    adapted, _ = load(str(demo_model_dir), adapter_path=str(codeword_adapter))
    tokens = mx.array([tokenizer.encode("Say the code word.")])
    got, expected = np.array(fused(tokens).astype(mx.float32)), np.array(adapted(tokens).astype(mx.float32))
    # Fusing into a 4-bit model re-quantizes W + scale*BA onto a new 4-bit grid (mlx-lm's
    # fuse does the same), so logits move by quantization noise; measured here: mean error
    # ~8% of the logits' spread, top-1 agreement 0.9. The dequantized fuse below is exact.
    assert np.abs(got - expected).mean() < 0.15 * expected.std()
    assert (got.argmax(-1) == expected.argmax(-1)).mean() >= 0.8
    assert json.loads((out / "config.json").read_text())["quantization"]["bits"] == 4


def test_demo_fuse_dequantized(demo_model_dir, codeword_adapter, tmp_path):
    from mlx_lm import load

    out = fuse_adapter(
        codeword_adapter.parent, codeword_adapter.name, demo_model_dir, tmp_path / "fused-f", dequantize=True
    )
    assert "quantization" not in json.loads((out / "config.json").read_text())
    fused, tokenizer = load(str(out))
    adapted, _ = load(str(demo_model_dir), adapter_path=str(codeword_adapter))
    tokens = mx.array([tokenizer.encode("Say the code word.")])
    np.testing.assert_allclose(
        np.array(fused(tokens).astype(mx.float32)), np.array(adapted(tokens).astype(mx.float32)), atol=0.05, rtol=0.02
    )


def test_demo_peft_export(codeword_adapter, tmp_path):
    out = export_peft(
        codeword_adapter.parent,
        codeword_adapter.name,
        tmp_path / "peft",
        base_model_name="HuggingFaceTB/SmolLM2-135M-Instruct",
    )
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == list(range(14, 30))  # the last 16 of 30 blocks
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
