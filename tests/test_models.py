"""The model store: discovery in every place a Mac user keeps models, and resolution."""

import os
import shutil
from pathlib import Path

import pytest

from lora_tui.core.errors import UserError
from lora_tui.core.models.store import describe_model, discover_models, load_model, resolve_model_path
from lora_tui.settings import Settings


def _copy(model_dir: Path, target: Path) -> Path:
    shutil.copytree(model_dir, target)
    return target


@pytest.fixture
def store(isolated_home, tiny_model_dir, tmp_path):
    """The tiny model placed in each of the places models are found."""
    home = Path(os.environ["HOME"])
    _copy(tiny_model_dir, isolated_home.models_dir / "mine")
    snapshot = Path(os.environ["HF_HUB_CACHE"]) / "models--someone--tiny-hub" / "snapshots" / "abc123"
    _copy(tiny_model_dir, snapshot)
    _copy(tiny_model_dir, home / ".lmstudio" / "models" / "publisher" / "tiny-lms")
    extra = tmp_path / "extra"
    _copy(tiny_model_dir, extra / "tiny-extra")
    (extra / "not-a-model").mkdir()
    (extra / "not-a-model" / "config.json").write_text("{}")
    return extra


def test_discovers_every_source(store, isolated_home):
    models = discover_models(isolated_home.models_dir, [store])
    by_name = {m.name: m for m in models}
    assert by_name["mine"].source == "lora-tui"
    assert by_name["someone/tiny-hub"].source == "hf-cache"
    assert by_name["publisher/tiny-lms"].source == "lm-studio"
    assert by_name["tiny-extra"].source == "folder"
    assert "not-a-model" not in by_name


def test_model_entry_fields(tiny_model_dir):
    info = describe_model(tiny_model_dir)
    assert info.architecture == "llama"
    assert info.quantization is None
    assert info.has_chat_template
    assert info.size_bytes > 0
    model, _ = load_model(tiny_model_dir)
    from mlx.utils import tree_flatten

    assert info.parameters == sum(v.size for _, v in tree_flatten(model.parameters()))


def test_quantized_parameter_count_matches_full_precision(tiny_model_dir, tmp_path):
    import json

    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.utils import quantize_model

    model, _ = load_model(tiny_model_dir)
    full = sum(v.size for _, v in tree_flatten(model.parameters()))
    config = json.loads((tiny_model_dir / "config.json").read_text())
    model, config = quantize_model(model, config, group_size=32, bits=4)
    target = tmp_path / "q4"
    target.mkdir()
    mx.save_safetensors(str(target / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (target / "config.json").write_text(json.dumps(config))
    info = describe_model(target)
    assert info.quantization == {"bits": 4, "group_size": 32}
    assert info.parameters == full


def test_resolve_by_name_folder_and_errors(store, isolated_home, tiny_model_dir, tmp_path):
    assert resolve_model_path("mine", isolated_home.models_dir) == isolated_home.models_dir / "mine"
    assert resolve_model_path(str(tiny_model_dir), isolated_home.models_dir) == tiny_model_dir
    with pytest.raises(UserError, match="not a model folder"):
        resolve_model_path(str(store / "not-a-model"), isolated_home.models_dir)
    with pytest.raises(UserError, match="No model named 'nothing-here'"):
        resolve_model_path("nothing-here", isolated_home.models_dir)


def test_hub_id_without_network_is_one_clear_sentence(isolated_home):
    with pytest.raises(UserError, match="Cannot download mlx-community/does-not-exist: ") as error:
        resolve_model_path("mlx-community/does-not-exist", isolated_home.models_dir)
    assert "\n" not in str(error.value)


def test_extra_model_dirs_from_settings(store, isolated_home):
    Settings(model_dirs=[str(store)]).save(isolated_home)
    extra = Settings.load(isolated_home).extra_model_dirs()
    assert "tiny-extra" in {m.name for m in discover_models(isolated_home.models_dir, extra)}


def test_broken_model_folder_fails_to_load_cleanly(tiny_model_dir, tmp_path):
    broken = _copy(tiny_model_dir, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match="cannot load this model"):
        load_model(broken)


def _half_precision_4bit(tiny_model_dir):
    import json

    import mlx.core as mx
    from mlx.utils import tree_map
    from mlx_lm.utils import quantize_model

    model, _ = load_model(tiny_model_dir)
    model.update(tree_map(lambda w: w.astype(mx.float16), model.parameters()))
    quantize_model(model, json.loads((tiny_model_dir / "config.json").read_text()), group_size=32, bits=4)
    return model


def test_on_the_cpu_a_quantized_model_is_expanded_to_float32_with_the_same_outputs(tiny_model_dir):
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    from lora_tui.core.models.store import expand_for_cpu

    model = _half_precision_4bit(tiny_model_dir)
    tokens = mx.array([[5, 17, 42, 8, 99, 3]])
    before = model(tokens).astype(mx.float32)
    assert expand_for_cpu(model) is True
    assert not any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for _, m in model.named_modules())
    assert {w.dtype for _, w in tree_flatten(model.parameters())} == {mx.float32}
    assert mx.allclose(model(tokens), before, atol=5e-2).item()  # the same weights, in other arithmetic
    assert expand_for_cpu(model) is False  # nothing left to do


def test_a_model_too_big_for_memory_in_float32_stays_as_it_is(tiny_model_dir, monkeypatch):
    import mlx.nn as nn

    from lora_tui.core.models import store as models

    model = _half_precision_4bit(tiny_model_dir)
    monkeypatch.setattr(models, "physical_memory", lambda: 2 * models._float32_bytes(model) - 1)
    assert models.expand_for_cpu(model) is False
    assert any(isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules())
