"""Where the LoRA went: the adapted projections by type and layer range, reported before the first step;
target modules the model does not have refused before anything is written (a Phi-3 has qkv_proj)."""

import shutil

import pytest
from textual.widgets import Input, Static
from tinymodels import make_family_model
from trainkit import arithmetic_rows, train, write_dataset
from uikit import settle

from lora_tui.core.errors import UserError
from lora_tui.core.training.adapted import check_targets, model_projections, short_names
from lora_tui.core.training.events import describe


@pytest.fixture(scope="module")
def phi3_dir(tmp_path_factory):
    return make_family_model(tmp_path_factory.mktemp("phi3") / "phi3", "phi3")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), arithmetic_rows(8))


def test_the_started_event_lists_each_adapted_projection_and_its_layers(tiny_model_dir, data, tmp_path):
    events = []
    train(tiny_model_dir, data, tmp_path / "run", events.append, num_layers=1, target_modules=["q", "v", "down"])
    started = events[0]
    assert [(a["module"], a["layers"]) for a in started.adapted] == [
        ("self_attn.q_proj", [1]),
        ("self_attn.v_proj", [1]),
        ("mlp.down_proj", [1]),
    ]
    assert sum(a["parameters"] for a in started.adapted) == started.trainable_parameters
    line = next(line for line in describe(started).splitlines() if line.startswith("adapted: "))
    assert line.startswith("adapted: q_proj 1 layer (1) ") and ", down_proj 1 layer (1) " in line
    assert line.endswith(f"of 0.13M, {started.trainable_parameters / started.total_parameters:.1%}")


def test_a_phi3_has_fused_projections_and_trains_on_them(phi3_dir, data, tmp_path):
    assert short_names(model_projections(phi3_dir)) == ["down", "gate_up", "o", "qkv"]
    events = []
    outcome = train(phi3_dir, data, tmp_path / "run", events.append, target_modules=["qkv", "gate_up"])
    assert outcome.type == "finished"
    assert [a["module"] for a in events[0].adapted] == ["self_attn.qkv_proj", "mlp.gate_up_proj"]


def test_target_modules_the_model_lacks_are_refused_before_anything_is_written(phi3_dir, data, isolated_home, capsys):
    from lora_tui.cli import main

    with pytest.raises(UserError, match="phi3 has no q, v projection"):
        check_targets(phi3_dir, {"q": "self_attn.q_proj", "v": "self_attn.v_proj"})
    argv = ["train", "--model", str(phi3_dir), "--data", str(data), "--name", "p", "--target-modules", "q,v"]
    assert main(argv) == 1
    assert "its projections are down_proj, gate_up_proj, o_proj, qkv_proj" in capsys.readouterr().err
    assert not (isolated_home.adapters_dir / "p").exists()


async def test_the_form_offers_the_projections_the_chosen_model_has(phi3_dir, isolated_home):
    from lora_tui.app import make_app

    shutil.copytree(phi3_dir, isolated_home.models_dir / "phi3")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        app.screen.query_one("#pick-model").value = str(isolated_home.models_dir / "phi3")
        await settle(pilot)
        field = app.screen.query_one("#field-target_modules")
        assert field.error == "This model has no q, k, v; it has down, gate_up, o, qkv."  # the default q,k,v,o
        app.screen.query_one("#param-target_modules", Input).value = "qkv,o"
        await settle(pilot)
        assert field.error is None
        assert "This model has: down, gate_up, o, qkv." in str(field.query_one(".param-help", Static).render())


def test_a_mixture_of_experts_says_its_experts_are_not_adapted(data, tmp_path):
    from tinymodels import make_tiny_model

    moe = make_tiny_model(
        tmp_path / "moe",
        model_type="qwen3_moe",
        head_dim=16,
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        norm_topk_prob=True,
    )
    events = []
    assert train(moe, data, tmp_path / "run", events.append).type == "finished"
    note = next(n for n in events[0].notes if n.startswith("A mixture of experts"))
    assert "mlp.switch_mlp.gate_proj" in note and "are not adapted" in note
    assert [a["module"] for a in events[0].adapted] == [f"self_attn.{p}_proj" for p in "qkvo"]


async def test_the_dashboard_log_lists_where_the_lora_went(isolated_home):
    from lora_tui.app import make_app
    from lora_tui.core.training.events import Started
    from lora_tui.messages import TrainingEventPosted

    adapted = [{"module": "self_attn.q_proj", "layers": list(range(14, 30)), "parameters": 294_912, "experts": 0}]
    started = Started({}, 294_912, 134_809_920, 10, 10, 8, 0, adapted=adapted)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        app.post_message(TrainingEventPosted(started, live=False))
        await settle(pilot)
        log = "".join(str(line.text) for line in app.screen.query_one("#run-log").lines)
        assert "adapted: q_proj 16 layers (14-29) 0.29M; total 0.29M of 135M, 0.2%" in log
