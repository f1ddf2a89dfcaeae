"""GRPO on the real demo model: rewarded for the right answer and for brevity, it learns to answer
the held-out prompts in one short sentence that is still right; the reference is the same model
with its LoRA switched off."""

import numpy as np
import pytest
from trainkit import train

from lora_tui.core.data.demo import GRPO_REWARDS, write_demo_grpo
from lora_tui.core.evaluation.run import eval_records, evaluate
from lora_tui.core.models.store import expand_for_cpu, load_model
from lora_tui.core.training.events import read_events
from lora_tui.core.training.params import preset_values

pytestmark = pytest.mark.e2e
# The preset, made cheaper for a CPU: smaller groups of shorter answers.
SETTINGS = {**preset_values("grpo"), "group_size": 4, "completion_length": 16, "max_seq_length": 128}


@pytest.fixture(scope="module")
def grpo_run(demo_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("grpo")
    data = root / "opposites"
    write_demo_grpo(data)
    adapter = root / "brief"
    outcome = train(demo_model_dir, data, adapter, rewards=list(GRPO_REWARDS), **SETTINGS)
    assert outcome.type == "finished", outcome
    return data, adapter


def test_grpo_beats_the_base_on_held_out_prompts_with_answers_still_right(demo_model_dir, grpo_run):
    data, adapter = grpo_run
    test_file, records = eval_records(data)
    assert test_file.name == "test.jsonl"
    evaluation = evaluate(
        demo_model_dir, records, [("base", None), ("grpo", adapter)], max_tokens=16, rewards=list(GRPO_REWARDS)
    )
    base, tuned = (side.rewards for side in evaluation.sides)
    assert tuned["total"] > base["total"] + 0.3, (base, tuned)
    # not gamed: more answers exactly right than the base, each a different sentence that names its word
    assert tuned["by_reward"]["exact"] > base["by_reward"]["exact"], (base, tuned)
    answers = evaluation.sides[1].answers
    assert len(set(answers)) == len(answers) and all(len(a.split()) >= 2 for a in answers), answers
    words = [r.messages[-1]["content"].split()[-1].rstrip("?") for r in records]
    assert sum(word in answer for word, answer in zip(words, answers, strict=True)) >= len(records) // 2, answers


def test_grpo_reports_rewards_kl_and_samples_every_step(grpo_run):
    _, adapter = grpo_run
    events = read_events(adapter / "events.jsonl")
    steps = [e for e in events if e.type == "step"]
    assert steps and all(e.reward is not None and e.kl is not None and 0 <= e.flat_groups <= 1 for e in steps)
    assert set(steps[0].rewards) == set(GRPO_REWARDS)
    assert steps[0].kl == pytest.approx(0.0, abs=1e-6)  # the LoRA starts at zero: the policy is the reference
    samples = [e for e in events if e.type == "sample"]
    assert len(samples) == len(steps) and all(s.rewards[0] >= s.rewards[1] for s in samples)
    validations = [e for e in events if e.type == "validation"]
    assert validations and validations[-1].val_loss == pytest.approx(-validations[-1].reward)


def test_the_reference_is_the_base_with_the_lora_switched_off(demo_model_dir, grpo_run):
    import mlx.core as mx
    from mlx_lm.tuner.utils import load_adapters

    from lora_tui.core.training.methods.grpo import lora_switched_off

    _, adapter = grpo_run
    tokens = mx.array([[1, 2, 3, 4, 5, 6, 7, 8]])
    base, _ = load_model(demo_model_dir)
    expand_for_cpu(base)
    tuned, _ = load_model(demo_model_dir)
    expand_for_cpu(tuned)
    load_adapters(tuned, str(adapter))
    assert not np.allclose(np.array(tuned(tokens)), np.array(base(tokens)), atol=1e-4)
    with lora_switched_off(tuned):
        np.testing.assert_allclose(np.array(tuned(tokens)), np.array(base(tokens)), atol=1e-4)
    assert not np.allclose(np.array(tuned(tokens)), np.array(base(tokens)), atol=1e-4)  # and back on after
