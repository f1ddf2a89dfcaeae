"""Will it fit: the peak a run needs, predicted from the model's files and the data's token counts before any
weight loads; a run that would not fit refused (CLI, queue, form) with the changes that make it fit; the
trial of `train --estimate` starts on the longest batch, so its peak is the run's."""

import threading

import pytest
from familytemplates import FAMILIES, make_chat_family_model
from textual.widgets import Input, Select
from trainkit import arithmetic_rows, train, write_dataset
from uikit import settle, wait_until

from lora_tui.cli import main
from lora_tui.core.training import fit
from lora_tui.core.training.batching import BatchPlan, Example, longest_first
from lora_tui.core.training.estimate import estimate_run
from lora_tui.core.training.fit import Budget, DoesNotFit, check_fit, estimate_memory, longest_batch, read_shape
from lora_tui.core.training.job import TrainingJob
from lora_tui.core.training.params import build_params
from lora_tui.core.training.queue import RunQueue
from lora_tui.core.units import human_bytes

MODEL_FAMILIES = [name for name in FAMILIES if name != "base"]


@pytest.fixture(scope="module")
def family_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit-families")
    return {name: make_chat_family_model(root / name, name) for name in MODEL_FAMILIES}


def _mixed_rows() -> list[dict]:
    """Short arithmetic records and four long ones: the longest batch is theirs."""
    long_text = " ".join(f"{n} plus {n} is {2 * n}." for n in range(40))
    long = [{"role": "user", "content": "Count."}, {"role": "assistant", "content": long_text}]
    return arithmetic_rows(12) + [{"messages": long} for _ in range(4)]


@pytest.mark.parametrize("family", MODEL_FAMILIES)
def test_the_shape_read_from_headers_is_the_loaded_model(family_models, family):
    from mlx.utils import tree_flatten

    from lora_tui.core.models.store import load_model

    shape = read_shape(family_models[family])
    model, _ = load_model(family_models[family])
    assert shape.parameters == sum(v.size for _, v in tree_flatten(model.parameters()))
    assert shape.layers == len(model.layers)
    attention = model.layers[0].self_attn
    for module, (inputs, outputs) in shape.projections.items():
        if module.startswith("self_attn."):
            weight = getattr(attention, module.split(".")[1]).weight
            assert weight.shape == (outputs, inputs)
    assert shape.head_norms == (family in ("qwen3", "gemma3", "qwen3_moe"))
    assert shape.block_norms == (4 if family == "gemma3" else 2)


def test_a_quantized_model_counts_the_parameters_it_has_dequantized(demo_model_dir):
    from mlx.utils import tree_flatten

    from lora_tui.core.models.store import expand_for_cpu, load_model

    shape = read_shape(demo_model_dir)
    model, _ = load_model(demo_model_dir)
    assert shape.quantized and shape.stored_bytes < shape.parameters  # about 4.5 bits a parameter
    assert shape.largest_quantized == 49152 * 576  # the embedding
    expand_for_cpu(model)
    assert shape.float32_bytes == sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    assert shape.projections["self_attn.k_proj"] == (576, 192)


def test_the_longest_batch_is_the_longest_records_padded():
    params = build_params({"batch_size": 4, "max_seq_length": 512})
    assert longest_batch(params, [10, 300, 40, 90]) == fit.LongestBatch(4, 320, 320)
    assert longest_batch(params, [10, 700]).width == 512  # truncated to max_seq_length
    assert longest_batch(params, [10, 20]).rows == 2  # fewer records than the batch
    packed = build_params({"batch_size": 4, "max_seq_length": 512, "pack": True})
    assert longest_batch(packed, [100, 20, 20, 20, 20]).rows == 2  # rows as wide as the longest record
    pairs = build_params({"batch_size": 3, "method": "dpo", "max_seq_length": 512})
    assert longest_batch(pairs, [50] * 8).rows == 6  # an odd batch of pairs is one pass of chosen and rejected
    grpo = build_params({"method": "grpo", "group_size": 6, "completion_length": 64, "rewards": ["number"]})
    batch = longest_batch(grpo, [40])
    assert (batch.rows, batch.width, batch.logit_width) == (6, 128, 96)


def test_estimates_grow_with_what_the_run_keeps(family_models):
    shape = read_shape(family_models["llama"])
    lengths = [100] * 8

    def total(**values):
        return estimate_memory(shape, build_params({"max_seq_length": 512, **values}), lengths, on_cpu=True).total

    assert total(batch_size=1) < total(batch_size=2) < total(batch_size=4)
    assert total(batch_size=4, grad_checkpoint=True) < total(batch_size=4)
    assert total(batch_size=4, rank=8) < total(batch_size=4, rank=64)
    estimate = estimate_memory(shape, build_params({"batch_size": 4}), lengths, on_cpu=True)
    assert estimate.logits == 4 * 128 * shape.vocab * 4 * fit.LOGIT_COPIES
    assert "for the longest batch (4 x 128 tokens)" in estimate.describe()


def test_a_run_over_the_budget_is_refused_with_changes_that_fit(family_models):
    shape = read_shape(family_models["llama"])
    params = build_params({"batch_size": 8, "max_seq_length": 1024})
    lengths = [1000] * 16
    needed = estimate_memory(shape, params, lengths).total
    budget = Budget(int(needed * 0.6), "available memory")
    with pytest.raises(DoesNotFit) as refused:
        check_fit(shape, params, lengths, budget)
    message = str(refused.value)
    assert message.startswith("This run needs about ") and "this machine can give" in message
    assert "(available memory). It fits with " in message
    fixes = refused.value.fixes
    assert fixes, message
    for change in fixes:
        fixed = build_params({**params.to_json(), **change.values})
        assert estimate_memory(shape, fixed, lengths).total <= budget.bytes
        assert change.describe().split(" (about ")[0] in message
    by_batch = next(change for change in fixes if "batch_size" in change.values)
    values = by_batch.values
    assert values["batch_size"] * values["grad_accumulation_steps"] >= 8  # the same records per step
    by_length = next(change for change in fixes if "max_seq_length" in change.values)
    assert "cuts 16 records" in by_length.cost
    assert check_fit(shape, params, lengths, Budget(needed, "available memory")).total == needed


def test_nothing_fits_when_even_the_weights_do_not(family_models):
    shape = read_shape(family_models["llama"])
    with pytest.raises(DoesNotFit, match="No smaller setting of this run fits"):
        check_fit(shape, build_params({}), [50], Budget(1000, "available memory"))


@pytest.fixture
def small_budget(monkeypatch):
    """This machine, as if it could give MLX only 60% of what a run asks."""

    def set_budget(needed: int) -> None:
        monkeypatch.setattr(fit, "memory_budget", lambda: Budget(int(needed * 0.6), "available memory"))

    return set_budget


def _tiny_needs(tiny_model_dir, data, **values) -> int:
    params = build_params({"max_seq_length": 128, "batch_size": 4, **values})
    return estimate_memory(read_shape(tiny_model_dir), params, fit.training_lengths(tiny_model_dir, data)).total


def test_train_refuses_before_writing_anything(tiny_model_dir, tmp_path, isolated_home, small_budget, capsys):
    data = write_dataset(tmp_path / "data", _mixed_rows())
    small_budget(_tiny_needs(tiny_model_dir, data))
    args = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--name", "big", "--max-seq-length", "128"]
    assert main([*args, "--batch-size", "4"]) == 1
    said = capsys.readouterr().err
    assert "This run needs about " in said and "It fits with " in said and "Traceback" not in said
    assert not (isolated_home.adapters_dir / "big").exists()
    assert main([*args, "--batch-size", "4", "--queue"]) == 1  # a queued run is checked when it is queued
    assert "This run needs about " in capsys.readouterr().err
    assert RunQueue(isolated_home.data_dir).jobs() == []


def test_a_run_that_fits_says_what_it_will_need(tiny_model_dir, tmp_path, isolated_home, capsys):
    data = write_dataset(tmp_path / "data", arithmetic_rows(8))
    args = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--name", "ok", "--epochs", "1"]
    assert main(args) == 0
    said = capsys.readouterr().err
    assert "Memory: about " in said and "for the longest batch (4 x " in said


def test_the_trial_starts_on_the_longest_batch(tiny_model_dir, tmp_path):
    from dataclasses import replace

    from lora_tui.core.training.loop import run_training

    data = write_dataset(tmp_path / "data", _mixed_rows())
    job = TrainingJob(tiny_model_dir, data, tmp_path / "trial", build_params({"max_seq_length": 1024, "seed": 3}))
    stop, steps = threading.Event(), []

    def first_step(event):
        if event.type == "step":
            steps.append(event)
            stop.set()

    run_training(replace(job, longest_first=True), first_step, stop)
    assert steps[0].trained_tokens == sum(sorted(fit.training_lengths(tiny_model_dir, data))[-4:])


def test_longest_first_moves_the_heaviest_batch_to_the_front():
    examples = [Example(tuple(range(n)), 0) for n in (5, 50, 7, 9)]
    plan = BatchPlan((((0,), (2,)), ((1,), (3,)), ((2,),)))
    assert longest_first(plan, examples).rows == (((1,), (3,)), ((0,), (2,)), ((2,),))


def test_the_estimate_reports_the_prediction_beside_the_measured_peak(tiny_model_dir, tmp_path):
    data = write_dataset(tmp_path / "data", _mixed_rows())
    job = TrainingJob(tiny_model_dir, data, tmp_path / "estimated", build_params({"max_seq_length": 512}))
    estimate = estimate_run(job)
    assert estimate.predicted_peak_bytes == _tiny_needs(tiny_model_dir, data, max_seq_length=512)
    assert ", predicted " in estimate.describe() and "the first on the longest batch" in estimate.describe()
    assert not (tmp_path / "estimated").exists()


async def test_the_form_offers_the_changes_and_applies_the_one_chosen(
    isolated_home, tiny_model_dir, tmp_path, small_budget
):
    import shutil

    from lora_tui.app import make_app
    from lora_tui.screens.dialogs import FitDialog

    shutil.copytree(tiny_model_dir, isolated_home.models_dir / "tiny")
    data = write_dataset(tmp_path / "data", _mixed_rows())
    small_budget(_tiny_needs(tiny_model_dir, data, max_seq_length=512, batch_size=8))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        form = app.screen
        form.query_one("#pick-model", Select).value = str(isolated_home.models_dir / "tiny")
        form.query_one("#pick-data", Input).value = str(data)
        form.query_one("#pick-name", Input).value = "too-big"
        form.query_one("#param-batch_size", Input).value = "8"
        form.query_one("#param-max_seq_length", Input).value = "512"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await wait_until(lambda: isinstance(app.screen, FitDialog), "the fit dialog", timeout=60)
        dialog = app.screen
        assert dialog.heading.startswith("This run needs about ")
        first = dialog.fixes[0]
        await pilot.press("1")
        await settle(pilot)
        assert app.screen is form and not app.training_running
        for name, value in first.values.items():
            shown = "on" if value is True else str(value)
            assert form.query_one(f"#param-{name}", Input).value == shown
        form.query_one("#param-batch_size", Input).value = "8"
        await settle(pilot)
        await pilot.click("#queue-run")  # Queue is checked the same way, and offers the same changes
        await wait_until(lambda: isinstance(app.screen, FitDialog), "the fit dialog from Queue", timeout=60)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is form
    assert not (isolated_home.adapters_dir / "too-big").exists()


def test_the_run_reports_its_prediction_beside_the_measured_peak(tiny_model_dir, tmp_path):
    import mlx.core as mx

    from lora_tui.core.training.events import describe

    data = write_dataset(tmp_path / "data", _mixed_rows())
    events = []
    held_before = mx.get_active_memory()  # arrays other tests of this process still hold
    train(tiny_model_dir, data, tmp_path / "run", events.append, max_seq_length=1024)
    started = events[0]
    assert started.predicted_peak_bytes == _tiny_needs(tiny_model_dir, data, max_seq_length=1024)
    assert f"predicted peak memory: {human_bytes(started.predicted_peak_bytes)}" in describe(started)
    measured = max(event.peak_memory_bytes for event in events if event.type == "step") - held_before
    assert 0.8 <= started.predicted_peak_bytes / measured <= 1.2  # MLX's own count of what it allocated


def test_a_rank_of_several_is_estimated_for_its_share_and_not_refused(tiny_model_dir, tmp_path, small_budget):
    data = write_dataset(tmp_path / "data", _mixed_rows())
    params = build_params({"batch_size": 4, "max_seq_length": 1024})
    small_budget(_tiny_needs(tiny_model_dir, data, max_seq_length=1024))
    with pytest.raises(DoesNotFit):
        fit.check_run_fits(tiny_model_dir, params, data)
    share = fit.check_run_fits(tiny_model_dir, params, data, ranks=2)
    assert share.batch.rows == 2


def test_a_broken_tokenizer_is_one_sentence_before_anything_is_written(tiny_model_dir, tmp_path, isolated_home, capsys):
    import shutil

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    (model / "tokenizer.json").write_text("{not json")
    data = write_dataset(tmp_path / "data", arithmetic_rows(8))
    assert main(["train", "--model", str(model), "--data", str(data), "--name", "new"]) == 1
    said = capsys.readouterr().err.strip()
    assert said.startswith(f"lora-tui: {model}: cannot load the model's tokenizer (") and "\n" not in said
    assert not (isolated_home.adapters_dir / "new").exists()
