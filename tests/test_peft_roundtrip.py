"""The PEFT export loads in Hugging Face PEFT and computes what MLX computes.

Needs torch and peft (the `peft-check` extra). `make test` installs them where a
torch wheel is at hand locally (pip's find-links), so it never pulls CUDA builds.
"""

import shutil

import mlx.core as mx
import numpy as np
import pytest

from lora_tui.core.adapters.convert import export_peft

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")


def test_peft_logits_match_mlx(tiny_model_dir, tiny_adapter, isolated_home, tmp_path):
    from mlx_lm import load
    from transformers import AutoModelForCausalLM

    shutil.copytree(tiny_adapter, isolated_home.adapters_dir / "arith")
    exported = export_peft(isolated_home.adapters_dir, "arith", tmp_path / "peft", base_model_name=str(tiny_model_dir))

    mlx_model, tokenizer = load(str(tiny_model_dir), adapter_path=str(tiny_adapter))
    tokens = tokenizer.encode("What is 7 plus 7? It is 14.")
    expected = np.array(mlx_model(mx.array([tokens])).astype(mx.float32))

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model = peft.PeftModel.from_pretrained(base, str(exported)).eval()
    with torch.no_grad():
        got = model(torch.tensor([tokens])).logits.numpy()
    np.testing.assert_allclose(got, expected, atol=2e-3, rtol=2e-3)
    with model.disable_adapter(), torch.no_grad():
        without = model(torch.tensor([tokens])).logits.numpy()
    assert np.abs(without - expected).max() > 1e-2  # the adapter is what makes them equal
