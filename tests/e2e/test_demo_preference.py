"""Preference tuning on the real demo model: DPO and ORPO learn a habit from pairs and keep the answers,
and DPO's reference is no second copy of the model."""

import mlx.core as mx
import pytest
from trainkit import train, write_dataset

from lora_tui.core.data.demo import SIGN_OFF, demo_pair_questions, demo_pairs, write_demo_pairs
from lora_tui.core.evaluation.run import eval_records, evaluate

pytestmark = pytest.mark.e2e
SETTINGS = {"epochs": 2, "rank": 8, "learning_rate": 2e-4, "max_seq_length": 128, "steps_per_eval": 100}


def habits(answers: list[str]) -> tuple[int, int, int]:
    """Of the held-out questions' greedy answers: how many end with the sign-off, keep the answer's key word,
    and say the sign-off more than once."""
    questions = demo_pair_questions("test")
    signed = sum(answer.strip().endswith(SIGN_OFF) for answer in answers)
    kept = sum(key.lower() in answer.lower() for answer, (_, _, key) in zip(answers, questions, strict=True))
    repeated = sum(answer.count(SIGN_OFF) > 1 for answer in answers)
    return signed, kept, repeated


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_pairs_teach_a_habit_and_keep_the_answers(demo_model_dir, tmp_path, method):
    data = tmp_path / "pairs"
    write_demo_pairs(data)
    adapter = tmp_path / method
    outcome = train(demo_model_dir, data, adapter, method=method, **SETTINGS)
    assert outcome.type == "finished", outcome
    test_file, records = eval_records(data)  # what `lora-tui eval` measures: the held-out pairs, base and adapter
    assert test_file.name == "test.jsonl"
    evaluation = evaluate(demo_model_dir, records, [("base", None), (method, adapter)], max_tokens=40, beta=0.1)
    rewards = evaluation.pair_rewards()
    assert rewards.reward_accuracy >= 0.8, rewards
    (base_signed, base_kept, _), (signed, kept, repeated) = (habits(side.answers) for side in evaluation.sides)
    assert signed > base_signed and signed >= len(records) // 2, (signed, base_signed)
    assert kept >= base_kept - 1 and repeated == 0, (kept, base_kept, repeated)


def test_a_dpo_step_takes_no_more_memory_than_an_sft_step_on_the_same_rows(demo_model_dir, tmp_path):
    pairs = demo_pairs("train")[:4]
    conversations = [
        {"messages": [{"role": "user", "content": pair["prompt"]}, {"role": "assistant", "content": pair[side]}]}
        for side in ("chosen", "rejected")
        for pair in pairs
    ]
    sft_data = write_dataset(tmp_path / "sft", conversations)
    dpo_data = write_dataset(tmp_path / "dpo", pairs)

    def peak(data, **settings) -> int:
        mx.clear_cache()
        mx.reset_peak_memory()
        outcome = train(demo_model_dir, data, tmp_path / f"run-{len(settings)}", epochs=1, rank=8, **settings)
        assert outcome.type == "finished" and outcome.step == 1, outcome
        return mx.get_peak_memory()

    sft = peak(sft_data, batch_size=8)
    dpo = peak(dpo_data, batch_size=4, method="dpo")  # the same 8 rows: 4 chosen, 4 rejected
    assert dpo <= sft * 1.05, (dpo, sft)  # a second copy of the weights would add hundreds of MB
