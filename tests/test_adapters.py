"""The adapter registry, fuse and PEFT export."""

import json
import shutil
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest

from lora_tui.cli import main
from lora_tui.core.adapters.convert import export_peft, fuse_adapter
from lora_tui.core.adapters.registry import get_adapter, list_adapters, rename_adapter
from lora_tui.core.errors import UserError


@pytest.fixture
def adapters_dir(isolated_home, tiny_adapter):
    shutil.copytree(tiny_adapter, isolated_home.adapters_dir / "arith")
    return isolated_home.adapters_dir


def test_list_carries_the_metadata_to_choose(adapters_dir, tiny_model_dir):
    [info] = list_adapters(adapters_dir)
    assert info.name == "arith" and info.source == "lora-tui"
    assert info.base_model_path == str(tiny_model_dir)
    assert info.rank == 8 and info.alpha == 16.0
    assert info.steps == 8 and info.epochs == 2 and info.learning_rate == 5e-3
    assert info.final_train_loss is not None and info.best_val_loss is not None and info.size_bytes > 0


def test_plain_mlx_lm_adapter_folder_is_listed(adapters_dir, tiny_adapter):
    plain = adapters_dir / "from-mlx-lm"
    plain.mkdir()
    shutil.copy(tiny_adapter / "adapters.safetensors", plain)
    config = json.loads((tiny_adapter / "adapter_config.json").read_text())
    (plain / "adapter_config.json").write_text(
        json.dumps({**config, "iters": 500, "learning_rate": 1e-5, "data": "data/"})
    )
    info = get_adapter(adapters_dir, "from-mlx-lm")
    assert info.source == "mlx-lm" and info.steps == 500 and info.rank == 8 and info.alpha == 16.0


def test_rename_keeps_it_usable(adapters_dir, tiny_model_dir):
    from mlx_lm import load

    rename_adapter(adapters_dir, "arith", "arith v2")
    assert [a.name for a in list_adapters(adapters_dir)] == ["arith v2"]
    assert json.loads((adapters_dir / "arith v2" / "lora_tui.json").read_text())["name"] == "arith v2"
    load(str(tiny_model_dir), adapter_path=str(adapters_dir / "arith v2"))
    with pytest.raises(UserError, match="path separator"):
        rename_adapter(adapters_dir, "arith v2", "../x")


def test_cli_list_show_json(adapters_dir, capsys):
    assert main(["adapters", "list", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert {
        "name",
        "base_model",
        "dataset",
        "created",
        "final_train_loss",
        "best_val_loss",
        "rank",
        "alpha",
        "epochs",
        "steps",
        "learning_rate",
        "size_bytes",
    } <= set(entry)
    assert main(["adapters", "show", "arith", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "arith"
    assert main(["adapters", "list"]) == 0
    assert capsys.readouterr().out.startswith("NAME")


def test_delete_needs_yes_without_a_terminal(adapters_dir, isolated_home, tmp_path):
    import os

    env = {**os.environ, "LORA_TUI_HOME": str(isolated_home.data_dir.parent)}
    refused = subprocess.run(
        [sys.executable, "-m", "lora_tui", "adapters", "delete", "arith"],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode == 1 and "add --yes" in refused.stderr and (adapters_dir / "arith").exists()
    assert main(["adapters", "delete", "arith", "--yes"]) == 0
    assert not (adapters_dir / "arith").exists()
    assert main(["adapters", "delete", "arith", "--yes"]) == 1


def test_fused_model_equals_base_plus_adapter(adapters_dir, tiny_model_dir, tmp_path):
    from mlx_lm import load

    out = fuse_adapter(adapters_dir, "arith", tiny_model_dir, tmp_path / "fused")
    fused, tokenizer = load(str(out))
    adapted, _ = load(str(tiny_model_dir), adapter_path=str(adapters_dir / "arith"))
    tokens = mx.array([tokenizer.encode("What is 5 plus 5?")])
    np.testing.assert_allclose(np.array(fused(tokens)), np.array(adapted(tokens)), atol=1e-4, rtol=1e-4)
    with pytest.raises(UserError, match="already exists"):
        fuse_adapter(adapters_dir, "arith", tiny_model_dir, out)


def test_peft_export_layout_and_math(adapters_dir, tmp_path, tiny_model_dir):
    """The PEFT update B(A(x)) * alpha/r equals MLX's scale * (x A) B for every module."""
    from safetensors.numpy import load_file

    out = export_peft(adapters_dir, "arith", tmp_path / "peft", base_model_name="org/tiny-llama")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8 and config["lora_alpha"] == 16.0
    assert config["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert config["base_model_name_or_path"] == "org/tiny-llama"
    peft = load_file(str(out / "adapter_model.safetensors"))
    mlx = {k: np.array(v) for k, v in mx.load(str(adapters_dir / "arith" / "adapters.safetensors")).items()}
    x = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    module = "model.layers.1.self_attn.q_proj"
    a, b = peft[f"base_model.model.{module}.lora_A.weight"], peft[f"base_model.model.{module}.lora_B.weight"]
    assert a.shape == (8, 64)
    peft_update = (x @ a.T @ b.T) * config["lora_alpha"] / config["r"]
    mlx_update = 2.0 * (x @ mlx[f"{module}.lora_a"]) @ mlx[f"{module}.lora_b"]
    np.testing.assert_allclose(peft_update, mlx_update, atol=1e-5)
    assert len(peft) == len(mlx)


def test_checkpoints_listed_and_promoted_from_the_cli(adapters_dir, capsys):
    folder = adapters_dir / "arith"
    assert main(["adapters", "checkpoints", "arith", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in listed] == ["step-0000004", "step-0000008"] and listed[0]["step"] == 4
    assert main(["adapters", "promote", "arith", "step-0000004"]) == 0
    weights = (folder / "checkpoints" / "step-0000004" / "adapters.safetensors").read_bytes()
    assert (folder / "adapters.safetensors").read_bytes() == weights
    meta = json.loads((folder / "lora_tui.json").read_text())
    assert meta["promoted_checkpoint"] == "step-0000004" and meta["steps"] == 4
    assert main(["adapters", "promote", "arith", "step-9"]) == 1
    assert "no checkpoint 'step-9' (checkpoints: step-0000004, step-0000008)" in capsys.readouterr().err


def test_a_missing_base_model_is_named_with_where_it_was_looked_for(tiny_adapter, isolated_home, capsys):
    import json as json_module
    import shutil

    from lora_tui.cli import main as cli

    target = isolated_home.adapters_dir / "orphan"
    shutil.copytree(tiny_adapter, target)
    meta = json_module.loads((target / "lora_tui.json").read_text())
    meta.update(base_model="gone-model", base_model_path="/nowhere/gone-model")
    (target / "lora_tui.json").write_text(json_module.dumps(meta))
    assert cli(["eval", "--adapter", "orphan"]) == 1
    err = capsys.readouterr().err
    assert "The base model of 'orphan' is missing: gone-model (looked in /nowhere/gone-model, " in err
    assert str(isolated_home.models_dir) in err
