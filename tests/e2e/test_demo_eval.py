"""Evaluation on the real demo model: an adapter trained on the demo facts beats its base on questions it never saw."""

import pytest
from trainkit import train

from lora_tui.core.data.demo import write_demo_dataset
from lora_tui.core.evaluation.run import eval_records, evaluate

pytestmark = pytest.mark.e2e


def test_a_fact_adapter_answers_held_out_questions_better_than_its_base(demo_model_dir, tmp_path):
    data = tmp_path / "demo-data"
    write_demo_dataset(data)
    adapter = tmp_path / "facts"
    outcome = train(
        demo_model_dir,
        data,
        adapter,
        epochs=4,
        batch_size=4,
        learning_rate=1e-3,
        rank=16,
        max_seq_length=96,
        target_modules=["q", "k", "v", "o", "gate", "up", "down"],
    )
    assert outcome.type == "finished"
    test_file, records = eval_records(data)
    assert test_file.name == "test.jsonl"
    evaluation = evaluate(demo_model_dir, records, [("base", None), ("adapter", adapter)], max_tokens=24)
    base, tuned = (side.summary(evaluation.references) for side in evaluation.sides)
    assert tuned["loss"] < base["loss"]
    assert tuned["contained"] > base["contained"], (base, tuned)
    assert tuned["token_f1"] > base["token_f1"]
