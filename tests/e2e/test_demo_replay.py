"""Replay on the real demo model: the base's own answers join every epoch, and drift is checked at validations."""

import json

import pytest
from conftest import DEMO_CACHE
from trainkit import train

from lora_tui.core.data.demo import write_demo_dataset

pytestmark = pytest.mark.e2e


def test_replay_trains_on_the_bases_own_answers_and_reports_drift(demo_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_TUI_HOME", str(DEMO_CACHE))  # the base's answers are cached between test runs
    data = tmp_path / "demo-data"
    write_demo_dataset(data)  # 48 training records
    events = []
    outcome = train(
        demo_model_dir,
        data,
        tmp_path / "kept",
        events.append,
        epochs=1,
        rank=8,
        learning_rate=2e-4,
        replay=0.25,
        steps_per_eval=8,
        max_seq_length=128,
    )
    assert outcome.type == "finished", outcome
    started = events[0]
    assert started.train_records == 64 and started.total_steps == 16  # 16 replayed records: a quarter of the epoch
    assert any(note.startswith("Replay: 16 of the base model's own answers") for note in started.notes)
    validations = [e for e in events if e.type == "validation"]
    drift = [e for e in events if e.type == "drift"]
    assert [e.step for e in drift] == [e.step for e in validations] == [8, 16]
    assert all(e.prompts == 24 and 0 <= e.drift <= 1 for e in drift)
    cached = [json.loads(p.read_text())["answers"] for p in (DEMO_CACHE / "cache" / "base-answers").glob("*.json")]
    replayed = next(answers for answers in cached if answers[0]["prompt"] == "What is the capital of Italy?")
    assert sum(a["ended"] for a in replayed) >= 16 and all(a["answer"] for a in replayed if a["ended"])
