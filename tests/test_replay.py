"""Replay (keep what it knew): the base's answers generated once and cached, mixed into each epoch, drift checked."""

import json

import pytest
from trainkit import arithmetic_rows, write_dataset

from lora_tui.core.errors import UserError
from lora_tui.core.training import replay
from lora_tui.core.training.params import PRESETS, build_params
from lora_tui.core.training.replay import base_answers, epoch_sample, replay_count, replay_pool


def test_replay_makes_its_share_of_every_epoch():
    assert replay_count(48, 0.25) == 16  # 16 of 64 records
    assert replay_count(10, 0.5) == 10
    assert replay_count(3, 0.1) == 1  # at least one when on
    assert replay_count(48, 0.0) == 0


def test_only_answers_that_ended_are_replayed_another_sample_each_epoch():
    answers = [{"prompt": f"q{i}", "answer": f"a{i}", "ended": i % 2 == 0} for i in range(10)]
    answers.append({"prompt": "empty", "answer": "", "ended": True})
    pool = replay_pool(answers)
    assert [r.messages[0]["content"] for r in pool] == ["q0", "q2", "q4", "q6", "q8"]
    assert [r.messages[1]["content"] for r in pool] == ["a0", "a2", "a4", "a6", "a8"]
    first = epoch_sample(len(pool), 7, seed=3, epoch=0)
    assert len(first) == 7 and set(first) == set(range(5))  # cycles through the five
    assert first == epoch_sample(5, 7, seed=3, epoch=0)  # a resumed run replays the same
    assert first != epoch_sample(5, 7, seed=3, epoch=1) and first != epoch_sample(5, 7, seed=4, epoch=0)
    assert epoch_sample(0, 5, seed=0, epoch=0) == []


def test_base_answers_are_generated_once_per_model(tiny_model_dir, tmp_path, monkeypatch):
    from lora_tui.core.models.store import load_model

    model, tokenizer = load_model(tiny_model_dir)
    questions = ["What is 2 plus 2?", "Name a colour."]
    first = base_answers(model, tokenizer, tiny_model_dir, questions, 8, tmp_path / "cache")
    assert [a["prompt"] for a in first] == questions and all(isinstance(a["ended"], bool) for a in first)

    def generate_again(*args, **kwargs):
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(replay, "greedy_batch", generate_again)
    assert base_answers(model, tokenizer, tiny_model_dir, questions, 8, tmp_path / "cache") == first
    with pytest.raises(AssertionError, match="generated again"):  # other questions: not in the cache
        base_answers(model, tokenizer, tiny_model_dir, questions[:1], 8, tmp_path / "cache")
    cached = json.loads(next((tmp_path / "cache" / "base-answers").glob("*.json")).read_text())
    assert cached["answers"] == first


def test_the_knowledge_preset_replays_and_replay_is_checked_against_its_range():
    assert PRESETS["knowledge"].values["replay"] > 0
    assert build_params({}).replay == 0.0  # off unless asked
    with pytest.raises(UserError, match=r"replay must be between 0 and 0\.5"):
        build_params({"replay": 0.9})


def test_samples_can_come_from_a_file_of_prompts(tiny_model_dir, tmp_path):
    from trainkit import train

    data = write_dataset(tmp_path / "data", arithmetic_rows(8), arithmetic_rows(4, offset=50))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Say hello.\n\nCount to three.\nNot this one.\n")
    events = []
    outcome = train(
        tiny_model_dir, data, tmp_path / "a", events.append, sample_every=1, sample_prompts=2, sample_from=str(prompts)
    )
    assert outcome.type == "finished"
    samples = [e for e in events if e.type == "sample"]
    assert samples and all(s.prompts == ["Say hello.", "Count to three."] for s in samples)
    missing = train(tiny_model_dir, data, tmp_path / "b", sample_every=1, sample_from=str(tmp_path / "nope.txt"))
    assert missing.type == "failed" and "nope.txt: cannot read the sample prompts" in missing.reason


def test_drift_counts_the_general_facts_the_base_knew_and_the_adapter_kept():
    from lora_tui.core.evaluation.drift import answers_right, drift_from, drift_set
    from lora_tui.core.training.events import DriftCheck, describe

    prompts = drift_set()
    assert len(prompts) == 24 and dict(prompts)["What is the capital of France?"] == ("Paris",)
    assert sum(bool(keys) for _, keys in prompts) >= 12  # facts with a known answer; the rest are open
    assert answers_right("A week has seven days.", ("7", "seven")) and not answers_right("Seventy.", ("seven",))
    base = ["The capital of France is Paris.", "It is 11.", "Waves and salt."]
    adapter = ["Paris.", "It is 12.", "The sea is wide."]
    keys = [("Paris",), ("12", "twelve"), ()]
    drift = drift_from(adapter, base, keys)
    assert (drift.known, drift.kept, drift.changed) == (1, 1, 3)  # the base got 7 plus 5 wrong: not a fact it knew
    assert drift_from(base, base, keys).drift == 0
    event = DriftCheck(step=4, **drift_from(["Lyon."], ["Paris."], [("Paris",)]).to_json())
    assert describe(event).endswith("(1 of 1 general answers changed; 0 of 1 facts it knew kept)")
