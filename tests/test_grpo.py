"""GRPO on tiny models: prompts as data, reward functions, advantages, the loss variants, exact resume,
and everything a user can get wrong refused before a line is written."""

import json
import re

import mlx.core as mx
import numpy as np
import pytest
from trainkit import assert_same_adapter, stopping_at_step, train, write_dataset

from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.records import load_records
from lora_tui.core.data.tokens import load_token_counter
from lora_tui.core.errors import UserError
from lora_tui.core.training.events import Cancelled, Failed, Finished, read_events
from lora_tui.core.training.forward import token_losses
from lora_tui.core.training.methods.grpo import GroupRelative
from lora_tui.core.training.params import build_params
from lora_tui.core.training.rewards import RewardError, parse_rewards, score_completions, split_rewards

GRPO = {"method": "grpo", "rewards": ["number", "length:6=0.5"], "group_size": 4, "completion_length": 8}


def prompt_rows(count: int, offset: int = 0) -> list[dict]:
    return [{"prompt": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(offset, offset + count)]


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("prompts"), prompt_rows(8), prompt_rows(4, offset=50))


def scores(spec: str, completions: list[str], answers: list, tokens: list[int] | None = None) -> list[float]:
    (reward,) = parse_rewards([spec])
    tokens = tokens or [len(c.split()) for c in completions]
    places = [f"line {i + 1}" for i in range(len(completions))]
    return score_completions([reward], [""] * len(completions), completions, answers, tokens, places)[0]


def test_prompts_are_a_format_of_their_own_with_token_counts(prompts, tiny_model_dir, tmp_path):
    report = check_dataset(prompts, load_token_counter(tiny_model_dir))
    assert report.ok and report.format == "grpo" and report.valid_records == 12
    counter = load_token_counter(tiny_model_dir)
    first = load_records(prompts / "train.jsonl")[0]
    assert report.tokens.counts[0] == counter.conversation_count(list(first.messages), add_generation_prompt=True)
    (tmp_path / "bad.jsonl").write_text(
        '{"prompt": "a", "answer": 3}\n{"prompt": "b", "answer": ""}\n'
        '{"prompt": [{"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}\n'
        '{"prompt": "e", "answer": [1]}\n'
    )
    bad = check_dataset(tmp_path / "bad.jsonl")
    assert [(p.line, p.message) for p in bad.errors] == [
        (2, "field 'answer' is empty (leave it out for a prompt with no answer)"),
        (3, "the prompt ends on an assistant turn; it must end where the answers begin"),
        (4, "field 'answer' must be a string or a number, not an array"),
    ]
    (tmp_path / "good.jsonl").write_text('{"prompt": "a", "answer": 3}\n')
    (record,) = load_records(tmp_path / "good.jsonl")
    assert record.is_prompt and record.answer == "3" and record.prompt_messages[-1]["content"] == "a"


def test_built_in_rewards_score_what_their_help_says():
    assert scores("exact", [" 42 ", "42.", "x"], ["42", "42", "42"]) == [1.0, 0.0, 0.0]
    assert scores("contains", ["It is Paris.", "paris", "Rome"], ["Paris"] * 3) == [1.0, 1.0, 0.0]
    assert scores("number", ["1 then 2, so 1,234", "about 7.0", "none"], ["1234", "7", "7"]) == [1.0, 1.0, 0.0]
    assert scores("format:<a>\\d+</a>", ["<a>12</a>", "<a>x</a>"], [None, None]) == [1.0, 0.0]
    assert scores("length:4", ["a", "b"], [None, None], tokens=[3, 6]) == [0.0, -0.5]
    (weighted,) = parse_rewards(["format:^\\d+,\\d+$=0.5"])
    assert weighted.weight == 0.5 and weighted.name == "format:^\\d+,\\d+$"


def test_a_list_of_rewards_keeps_the_commas_of_a_regex():
    assert split_rewards("number, format:^\\d{1,3}(,\\d{3})*$=2,length:20") == [
        "number",
        "format:^\\d{1,3}(,\\d{3})*$=2",
        "length:20",
    ]
    assert build_params({"rewards": "exact,length:9"}).rewards == ["exact", "length:9"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "--reward nope: no such reward"),
        ("format:(", "the regular expression does not compile"),
        ("length:x", "N must be a whole number"),
        ("format", "--reward format needs format:REGEX"),
        ("exact:1", "takes no argument"),
    ],
)
def test_a_reward_that_cannot_work_is_refused_by_name(spec, message):
    with pytest.raises(UserError, match=message.replace("(", "\\(")):
        build_params({"method": "grpo", "rewards": [spec]})


def test_user_rewards_load_one_at_a_time_or_batched_and_their_faults_are_named(tmp_path):
    code = (
        "def brief(prompt, completion, answer):\n    return -len(completion)\n\n"
        "def batch(prompts, completions, answers):\n"
        "    return [float(c == a) for c, a in zip(completions, answers)]\n\n"
        "def broken(prompt, completion, answer):\n    if completion == 'b':\n        raise ValueError('no b')\n"
        "    return 1.0\n\n"
        "def wordy(prompt, completion, answer):\n    return 'good'\n"
    )
    (tmp_path / "mine.py").write_text(code)
    assert scores(f"{tmp_path}/mine.py:brief", ["ab", "abc"], [None, None]) == [-2.0, -3.0]
    assert scores(f"{tmp_path}/mine.py:batch", ["x", "y"], ["x", "x"]) == [1.0, 0.0]
    with pytest.raises(RewardError, match=r"mine.py:broken failed on line 2: ValueError: no b \(mine.py, line 9\)"):
        scores(f"{tmp_path}/mine.py:broken", ["a", "b"], [None, None])
    with pytest.raises(RewardError, match="returned 'good' for line 1; a reward must be a finite number"):
        scores(f"{tmp_path}/mine.py:wordy", ["a"], [None])
    with pytest.raises(UserError, match="no function named 'absent'"):
        parse_rewards([f"{tmp_path}/mine.py:absent"])
    (tmp_path / "typo.py").write_text("def f(prompt, completion, answer):\n    return (\n")
    with pytest.raises(UserError, match=r"typo.py, line 2: .* \(a syntax error in the reward file\)"):
        parse_rewards([f"{tmp_path}/typo.py:f"])


def method_with(**values) -> GroupRelative:
    method = GroupRelative.__new__(GroupRelative)
    method.params = build_params({**GRPO, **values})
    return method


def test_advantages_are_each_answer_against_its_group():
    totals = np.array([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    grpo = method_with().advantages(totals)
    np.testing.assert_allclose(grpo[:4], [0.866, -0.866, -0.866, 0.866], atol=1e-3)  # over the group's std
    np.testing.assert_allclose(grpo[4:], 0.0)  # answers that all scored alike teach nothing
    np.testing.assert_allclose(method_with(grpo_loss="dr_grpo").advantages(totals)[:4], [0.5, -0.5, -0.5, 0.5])


def fixed_logits_model(logits: np.ndarray):
    return lambda inputs: mx.array(logits)


@pytest.mark.parametrize("variant", ["grpo", "dr_grpo", "dapo"])
def test_each_loss_variant_normalises_as_documented(variant):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 5)).astype(np.float32)
    targets = np.array([[1, 2, 3, 4], [0, 1, 2, 3]])
    mask = np.array([[0, 1, 1, 1], [0, 1, 0, 0]], dtype=np.float32)
    advantages = np.array([1.0, -2.0], dtype=np.float32)
    method = method_with(grpo_loss=variant, kl_beta=0.0, completion_length=8)
    model = fixed_logits_model(logits)
    inputs = mx.zeros(targets.shape, dtype=mx.int32)  # the fixed logits do not read them
    policy = -token_losses(model, inputs, mx.array(targets), mx.array(mask), None)  # the reference, here
    trained = mx.array(float(mask.sum()))  # the batch's answer tokens (here one micro-batch's)
    loss, count, stats = method.loss(
        model, inputs, mx.array(targets), mx.array(mask), mx.array(advantages), policy, trained
    )
    per_token = -(advantages[:, None] * mask)  # the ratio is 1: the surrogate is the advantage on each trained token
    expected = {
        "grpo": np.mean(per_token.sum(axis=1) / mask.sum(axis=1)),
        "dr_grpo": per_token.sum() / (2 * 8),
        "dapo": per_token.sum() / mask.sum(),
    }[variant]
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(count) == (mask.sum() if variant == "dapo" else 2)
    assert float(stats[1]) == mask.sum() and float(stats[0]) == pytest.approx(0.0, abs=1e-6)  # no KL: ref = policy


def test_the_kl_term_is_zero_at_the_reference_and_positive_away_from_it():
    logits = np.zeros((1, 3, 4), dtype=np.float32)
    targets, mask = mx.array([[1, 2, 3]]), mx.ones((1, 3))
    method = method_with(kl_beta=0.5)
    at_reference = mx.full((1, 3), -np.log(4.0))  # the uniform logits' log-probability of any token
    loss, _, stats = method.loss(
        fixed_logits_model(logits),
        mx.zeros((1, 3), dtype=mx.int32),
        targets,
        mask,
        mx.zeros((1,)),
        at_reference,
        mx.array(3.0),
    )
    assert float(stats[0]) == pytest.approx(0.0, abs=1e-6) and float(loss) == pytest.approx(0.0, abs=1e-6)
    loss, _, stats = method.loss(
        fixed_logits_model(logits),
        mx.zeros((1, 3), dtype=mx.int32),
        targets,
        mask,
        mx.zeros((1,)),
        at_reference - 1,
        mx.array(3.0),
    )
    assert float(stats[0]) > 0 and float(loss) == pytest.approx(0.5 * float(stats[0]) / 3, rel=1e-5)


def test_grpo_trains_reports_and_saves_an_mlx_lm_adapter(tiny_model_dir, prompts, tmp_path):
    events = []
    outcome = train(tiny_model_dir, prompts, tmp_path / "run", events.append, **GRPO)
    assert isinstance(outcome, Finished)
    steps = [e for e in events if e.type == "step"]
    assert len(steps) == 2 and all(set(e.rewards) == {"number", "length:6"} for e in steps)
    assert all(e.completion_tokens > 0 and 0 <= e.flat_groups <= 1 and e.kl >= 0 for e in steps)
    assert [e.type for e in events].count("sample") == 2
    validation = next(e for e in events if e.type == "validation")
    assert validation.val_loss == pytest.approx(-validation.reward) and set(validation.rewards) == {
        "number",
        "length:6",
    }
    meta = json.loads((tmp_path / "run" / "lora_tui.json").read_text())
    assert meta["parameters"]["method"] == "grpo" and meta["final_rewards"]["reward"] == steps[-1].reward
    assert json.loads((tmp_path / "run" / "adapter_config.json").read_text())["fine_tune_type"] == "lora"


def test_a_cancelled_grpo_run_resumes_to_the_same_samples_and_adapter(tiny_model_dir, prompts, tmp_path):
    settings = {**GRPO, "epochs": 2, "batch_size": 2}
    straight_events = []
    train(tiny_model_dir, prompts, tmp_path / "straight", straight_events.append, **settings)
    stop_midway, stop = stopping_at_step(3)
    cancelled = train(tiny_model_dir, prompts, tmp_path / "resumed", listener=stop_midway, stop=stop, **settings)
    assert isinstance(cancelled, Cancelled)
    resumed_events = []
    resumed = train(tiny_model_dir, prompts, tmp_path / "resumed", resumed_events.append, resume=True, **settings)
    assert isinstance(resumed, Finished) and resumed.step == 8
    after = {e.step: e.answers for e in resumed_events if e.type == "sample"}
    assert after == {e.step: e.answers for e in straight_events if e.type == "sample" and e.step in after}
    assert_same_adapter(tmp_path / "straight", tmp_path / "resumed")


def test_a_failing_user_reward_stops_the_run_and_saves_what_it_trained(tiny_model_dir, prompts, tmp_path):
    (tmp_path / "late.py").write_text(
        "calls = 0\n\ndef late(prompt, completion, answer):\n    global calls\n    calls += 1\n"
        "    if calls > 8:\n        raise ZeroDivisionError('late')\n    return 0.0\n"
    )
    settings = {**GRPO, "rewards": [f"{tmp_path}/late.py:late"], "batch_size": 2}
    outcome = train(tiny_model_dir, prompts, tmp_path / "run", **settings)
    assert isinstance(outcome, Failed)
    assert re.search(
        r"late.py:late failed on train.jsonl, line \d: ZeroDivisionError: late \(late.py, line 7\)", outcome.reason
    )
    assert "Training stopped at step 1; what it trained is saved" in outcome.advice
    assert (tmp_path / "run" / "checkpoints" / "step-0000001").is_dir()
    assert json.loads((tmp_path / "run" / "lora_tui.json").read_text())["status"] == "failed"
    assert read_events(tmp_path / "run" / "events.jsonl")[-1].type == "failed"


@pytest.mark.parametrize(
    ("extra", "rows", "message"),
    [
        ([], prompt_rows(4), "--method grpo needs at least one --reward"),
        (["--reward", "exact"], [{"prompt": "no answer"}], "line 1: no 'answer', which --reward exact scores against"),
        (["--reward", "format:[", "--group-size", "4"], prompt_rows(4), "the regular expression does not compile"),
        (["--reward", "exact", "--group-size", "1"], prompt_rows(4), "--group-size must be between 2 and 64"),
        (
            ["--reward", "number", "--fine-tune-type", "dora"],
            prompt_rows(4),
            "use --fine-tune-type lora, or --kl-beta 0",
        ),
    ],
)
def test_grpo_mistakes_are_refused_before_anything_is_written(
    tiny_model_dir, isolated_home, tmp_path, capsys, extra, rows, message
):
    from lora_tui.cli import main

    data = write_dataset(tmp_path / "data", rows)
    argv = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--name", "g", "--method", "grpo", *extra]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (isolated_home.adapters_dir / "g").exists()


def test_sft_data_for_grpo_and_prompts_for_sft_are_refused_with_an_example(tiny_model_dir, prompts, tmp_path):
    refused = train(tiny_model_dir, prompts, tmp_path / "a")
    assert isinstance(refused, Failed) and "this is a GRPO prompt; train prompts with --method grpo" in refused.reason
    sft = write_dataset(tmp_path / "sft", [{"prompt": "p", "completion": "c"}])
    refused = train(tiny_model_dir, sft, tmp_path / "b", **GRPO)
    assert isinstance(refused, Failed) and '"answer": "42"' in refused.reason


def test_eval_scores_an_adapters_held_out_prompts_with_its_own_rewards(tiny_model_dir, prompts, isolated_home, capsys):
    from lora_tui.cli import main

    train(tiny_model_dir, prompts, isolated_home.adapters_dir / "rl", **GRPO)
    assert main(["eval", "--adapter", "rl", "--max-tokens", "4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert [side["label"] for side in summary] == ["base", "adapter"]
    assert all(set(side["rewards"]["by_reward"]) == {"number", "length:6"} for side in summary)
    assert main(["eval", "--model", str(tiny_model_dir), "--data", str(prompts), "--max-tokens", "4"]) == 1
    assert "GRPO prompts are scored by rewards; give them with --reward NAME" in capsys.readouterr().err


def test_data_demo_grpo_writes_prompts_with_answers(tmp_path, capsys):
    from lora_tui.cli import main

    assert main(["data", "demo", "--grpo", "--out", str(tmp_path / "opposites")]) == 0
    assert "--preset grpo --reward exact --reward length:10" in capsys.readouterr().err
    records = load_records(tmp_path / "opposites" / "train.jsonl")
    assert len(records) == 32 and all(r.is_prompt and r.answer.startswith("The opposite of") for r in records)


def test_the_form_and_the_flags_share_the_grpo_parameters():
    import argparse

    from lora_tui.core.training.params import PARAMS_BY_NAME, add_arguments, from_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--reward", "exact", "--reward", "number=0.5,length:9", "--kl-beta", "0"])
    assert from_arguments(args)["rewards"] == ["exact", "number=0.5", "length:9"]
    assert PARAMS_BY_NAME["rewards"].flag == "--reward" and build_params(from_arguments(args)).kl_beta == 0.0


def test_logits_of_the_last_positions_only_are_those_of_the_whole_pass(tiny_model_dir):
    from lora_tui.core.models.store import load_model
    from lora_tui.core.training.forward import forward

    model, _ = load_model(tiny_model_dir)
    inputs = mx.array([[5, 9, 2, 7, 1, 3, 8, 4]])
    whole = np.array(model(inputs))
    np.testing.assert_allclose(np.array(forward(model, inputs, None, last=3)), whole[:, -3:], atol=1e-5)


def test_reward_help_says_what_each_reward_does(capsys):
    from lora_tui.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "number" in out and "the last number in the completion equals the answer" in out and "FILE.py:FUNC" in out
