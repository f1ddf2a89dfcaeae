"""The training loop on tiny models: files, packing, masking, cancel and resume."""

import json

import mlx.core as mx
import numpy as np
import pytest
from trainkit import arithmetic_rows, assert_same_adapter, stopping_at_step, train, write_dataset

from lora_tui.core.data.records import Record
from lora_tui.core.models.store import load_model
from lora_tui.core.training.batching import Example, make_batch, plan_epoch, tokenize
from lora_tui.core.training.events import Cancelled, Failed, Finished, read_events
from lora_tui.core.training.forward import forward


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), arithmetic_rows(24), arithmetic_rows(8, offset=100))


def test_training_writes_an_adapter_mlx_lm_loads(tiny_model_dir, data, tmp_path):
    from mlx_lm import load

    adapter = tmp_path / "arith"
    outcome = train(tiny_model_dir, data, adapter, epochs=2)
    assert isinstance(outcome, Finished) and outcome.step == 12
    assert {p.name for p in adapter.iterdir()} >= {
        "adapters.safetensors",
        "adapter_config.json",
        "lora_tui.json",
        "events.jsonl",
        "checkpoints",
        "run.json",
    }
    adapted, tokenizer = load(str(tiny_model_dir), adapter_path=str(adapter))  # mlx-lm reads our files
    base, _ = load(str(tiny_model_dir))
    prompt = mx.array([tokenizer.encode("What is 2 plus 2?")])
    assert not np.allclose(np.array(adapted(prompt)), np.array(base(prompt)), atol=1e-4)  # the update applies
    metadata = json.loads((adapter / "lora_tui.json").read_text())
    assert metadata["steps"] == 12 and metadata["epochs"] == 2 and metadata["status"] == "finished"
    assert metadata["parameters"]["rank"] == 8 and metadata["parameters"]["mask_prompt"] is True
    assert metadata["best_val_loss"] == min(
        e.val_loss for e in read_events(adapter / "events.jsonl") if e.type == "validation"
    )
    assert len(metadata["dataset_sha256"]) == 64 and metadata["tokens_seen"] > 0


def test_loss_goes_down(tiny_model_dir, data, tmp_path):
    train(tiny_model_dir, data, tmp_path / "a", epochs=3)
    losses = [e.train_loss for e in read_events(tmp_path / "a" / "events.jsonl") if e.type == "step"]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])


def test_events_are_complete_and_typed(tiny_model_dir, data, tmp_path):
    seen = []
    train(tiny_model_dir, data, tmp_path / "a", listener=seen.append, epochs=1, save_every=3)
    kinds = [e.type for e in seen]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert {"step", "validation", "checkpoint"} <= set(kinds)
    started = seen[0]
    assert started.total_steps == 6 and 0 < started.trainable_parameters < started.total_parameters
    step = next(e for e in seen if e.type == "step")
    assert step.tokens_per_second > 0 and step.peak_memory_bytes > 0 and step.learning_rate > 0
    assert [e.to_json() for e in read_events(tmp_path / "a" / "events.jsonl")] == [e.to_json() for e in seen]


def test_the_start_notes_what_was_cut_and_how_to_get_a_validation_loss(tiny_model_dir, tmp_path):
    long_row = {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "Yes."}]}
    data = write_dataset(tmp_path / "data", [*arithmetic_rows(7), long_row])
    seen = []
    assert train(tiny_model_dir, data, tmp_path / "a", listener=seen.append, max_seq_length=64).type == "finished"
    notes = seen[0].notes
    assert "Cut to the max sequence length (64 tokens): 1 record." in notes
    assert any("no validation loss" in note and "--valid-fraction" in note for note in notes)


def test_packed_record_computes_what_it_would_alone(tiny_model_dir):
    model, tokenizer = load_model(tiny_model_dir)
    records = [
        Record(i, text=t) for i, t in enumerate(["The quick brown fox.", "def add(a, b): return a + b", "Paris 🙂"])
    ]
    examples, _ = tokenize(records, tokenizer, 128)
    packed = make_batch(examples, ((0, 1, 2),), mask_prompt=False, packed=True)
    logits = np.array(forward(model, mx.array(packed.inputs), mx.array(packed.attention_mask())))
    cursor = 0
    for example in examples:
        alone = np.array(model(mx.array([example.tokens[:-1]])))
        length = len(example.tokens) - 1
        np.testing.assert_allclose(logits[0, cursor : cursor + length], alone[0], atol=2e-4, rtol=2e-4)
        cursor += len(example.tokens)
    # Without the mask, later records would see earlier ones: the test can tell.
    leaky = np.array(model(mx.array(packed.inputs)))
    second = slice(len(examples[0].tokens), len(examples[0].tokens) + len(examples[1].tokens) - 1)
    assert np.abs(leaky[0, second] - logits[0, second]).max() > 1e-3


def test_loss_mask_trains_responses_within_records():
    examples = [Example((1, 2, 3, 4, 5), prompt_length=3), Example((6, 7, 8), prompt_length=1)]
    batch = make_batch(examples, ((0, 1),), mask_prompt=True, packed=True)
    trained_targets = batch.targets[0][batch.loss_mask[0] > 0].tolist()
    assert trained_targets == [4, 5, 7, 8]  # responses only; never token 6 predicted from token 5
    unmasked = make_batch(examples, ((0, 1),), mask_prompt=False, packed=True)
    assert unmasked.targets[0][unmasked.loss_mask[0] > 0].tolist() == [2, 3, 4, 5, 7, 8]


def test_epoch_plans_are_deterministic_and_cover_every_record():
    examples = [Example(tuple(range(n)), 0) for n in (5, 9, 3, 30, 12, 7, 7, 20)]
    for pack in (False, True):
        first = plan_epoch(examples, 2, seed=1, epoch=0, pack=pack, max_seq_length=40)
        assert first == plan_epoch(examples, 2, seed=1, epoch=0, pack=pack, max_seq_length=40)
        assert sorted(i for batch in first.rows for row in batch for i in row) == list(range(8))
    assert plan_epoch(examples, 2, 1, 0, False, 40) != plan_epoch(examples, 2, 1, 1, False, 40)
    packed = plan_epoch(examples, 2, 1, 0, True, 40)
    assert all(sum(len(examples[i].tokens) for i in row) <= 40 for batch in packed.rows for row in batch)


def test_rows_pad_to_whole_blocks_of_inputs_and_packing_fills_the_padded_row():
    for tokens, inputs in ((2, 32), (33, 32), (34, 64), (65, 64), (66, 96)):
        batch = make_batch([Example(tuple(range(tokens)), 0)], ((0,),), mask_prompt=False, packed=False)
        assert batch.inputs.shape == (1, inputs)  # a row of n tokens has n - 1 inputs
    examples = [Example(tuple(range(n)), 0) for n in (40, 20, 5)]
    plan = plan_epoch(examples, 4, seed=0, epoch=0, pack=True, max_seq_length=512)
    assert [sorted(row) for batch in plan.rows for row in batch] == [[0, 1, 2]]  # 65 tokens: the 40's padded row
    assert make_batch(examples, plan.rows[0], mask_prompt=False, packed=True).inputs.shape == (1, 64)


@pytest.mark.parametrize("pack", [False, True])
def test_resume_ends_where_a_straight_run_ends(tiny_model_dir, data, tmp_path, pack):
    settings = dict(epochs=2, dropout=0.1, grad_accumulation_steps=2, pack=pack, batch_size=2 if pack else 4)
    straight = train(tiny_model_dir, data, tmp_path / "straight", **settings)
    stop_midway, stop = stopping_at_step(3)
    cancelled = train(tiny_model_dir, data, tmp_path / "resumed", listener=stop_midway, stop=stop, **settings)
    assert isinstance(cancelled, Cancelled) and cancelled.step == 3
    resumed = train(tiny_model_dir, data, tmp_path / "resumed", resume=True, **settings)
    assert isinstance(resumed, Finished) and resumed.step == straight.step
    assert_same_adapter(tmp_path / "straight", tmp_path / "resumed")
    losses = lambda folder: [e.train_loss for e in read_events(folder / "events.jsonl") if e.type == "step"]  # noqa: E731
    np.testing.assert_allclose(losses(tmp_path / "straight"), losses(tmp_path / "resumed"), rtol=1e-4)


def test_keep_best_checkpoints(tiny_model_dir, data, tmp_path):
    train(tiny_model_dir, data, tmp_path / "a", epochs=3, steps_per_eval=1, save_every=1, keep_best=2)
    kept = sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir())
    assert 2 <= len(kept) <= 3 and kept[-1] == "step-0000018"


def test_early_stopping(tiny_model_dir, data, tmp_path):
    outcome = train(
        tiny_model_dir,
        data,
        tmp_path / "a",
        epochs=10,
        learning_rate=1e-2,
        steps_per_eval=1,
        early_stopping_patience=2,
        lr_schedule="constant",
    )
    assert isinstance(outcome, Finished)
    assert outcome.reason == "early stopping" and outcome.step < 60


def test_schedules_and_warmup(tiny_model_dir, data, tmp_path):
    seen = []
    train(tiny_model_dir, data, tmp_path / "a", listener=seen.append, epochs=2, warmup_steps=4, lr_schedule="linear")
    rates = [e.learning_rate for e in seen if e.type == "step"]
    assert rates[0] == 0.0 and rates[3] == pytest.approx(7.5e-4) and rates[4] == pytest.approx(1e-3)
    assert rates[-1] < rates[5]


def test_failure_is_an_event_not_a_traceback(tiny_model_dir, tmp_path):
    data = write_dataset(tmp_path / "d", arithmetic_rows(4))
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    outcome = train(broken, data, tmp_path / "a")
    assert isinstance(outcome, Failed) and "cannot load this model" in outcome.reason
    assert not (tmp_path / "a" / "adapters.safetensors").exists()


@pytest.mark.parametrize(
    "refusal",
    [
        lambda path: OSError(__import__("errno").ENOSPC, "No space left on device", path),
        lambda path: RuntimeError("[write] Unable to write 11560 bytes to file."),  # what MLX says
    ],
)
def test_disk_full_fails_with_advice_and_leaves_no_half_written_files(
    tiny_model_dir, data, tmp_path, monkeypatch, refusal
):
    save = mx.save_safetensors
    calls = []

    def disk_fills(path, *args, **kwargs):
        calls.append(path)
        if len(calls) > 2:  # the first checkpoint (weights + optimizer) is saved, the next one is not
            raise refusal(path)
        return save(path, *args, **kwargs)

    monkeypatch.setattr(mx, "save_safetensors", disk_fills)
    adapter = tmp_path / "full"
    outcome = train(tiny_model_dir, data, adapter, save_every=2)
    assert isinstance(outcome, Failed)
    assert outcome.reason.startswith(f"The disk filled while saving to {adapter} (") and "free)" in outcome.reason
    assert "a checkpoint of this run takes" in outcome.advice and "resume the run" in outcome.advice
    assert not (adapter / "adapters.safetensors").exists()
    assert [p.name for p in (adapter / "checkpoints").iterdir()] == ["step-0000002"]  # the half-built one is gone
    assert read_events(adapter / "events.jsonl")[-1].type == "failed"


def test_out_of_memory_fails_with_advice(tiny_model_dir, data, tmp_path, monkeypatch):
    from lora_tui.core.training.methods import sft

    def no_memory(*args, **kwargs):
        raise RuntimeError("[malloc] Unable to allocate 68719476736 bytes: out of memory")

    monkeypatch.setattr(sft, "make_batch", no_memory)
    outcome = train(tiny_model_dir, data, tmp_path / "oom")
    assert isinstance(outcome, Failed)
    assert outcome.reason.startswith("Out of memory") and "smaller batch size" in outcome.advice
    assert not (tmp_path / "oom" / "adapters.safetensors").exists()


def test_samples_answer_the_same_validation_prompts_at_validations(tiny_model_dir, tmp_path):
    data = write_dataset(tmp_path / "data", arithmetic_rows(16), arithmetic_rows(4, offset=50))
    events = []
    outcome = train(
        tiny_model_dir, data, tmp_path / "sampled", events.append, epochs=2, sample_every=1, sample_prompts=2
    )
    assert outcome.type == "finished"
    samples = [e for e in events if e.type == "sample"]
    validations = [e for e in events if e.type == "validation"]
    assert len(samples) == len(validations) > 0
    assert all(s.prompts == ["What is 50 plus 50?", "What is 51 plus 51?"] and len(s.answers) == 2 for s in samples)
    logged = [e for e in read_events(tmp_path / "sampled" / "events.jsonl") if e.type == "sample"]
    assert logged == samples  # in events.jsonl, and read back the same
    assert not any(e.type == "sample" for e in _run_events(tiny_model_dir, data, tmp_path / "plain"))  # off by default


def _run_events(model, data, adapter) -> list:
    events = []
    train(model, data, adapter, events.append, epochs=1)
    return events
