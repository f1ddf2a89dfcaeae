"""Preference pairs: reading and checking them, and DPO / ORPO training on tiny models."""

import json

import numpy as np
import pytest
from trainkit import arithmetic_rows, assert_same_adapter, stopping_at_step, train, write_dataset

from lora_tui.core.adapters.registry import describe_adapter
from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.records import append_preference_pair, load_records
from lora_tui.core.data.split import split_dataset
from lora_tui.core.data.tokens import load_token_counter
from lora_tui.core.errors import UserError
from lora_tui.core.models.store import load_model
from lora_tui.core.training.events import Cancelled, Finished, read_events
from lora_tui.core.training.preference import pair_rewards, tokenize_pairs


def pair_rows(count: int, offset: int = 0) -> list[dict]:
    return [
        {"prompt": f"What is {i} plus {i}?", "chosen": f"It is {2 * i}. Glad to help!", "rejected": f"It is {2 * i}."}
        for i in range(offset, offset + count)
    ]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("pairs"), pair_rows(16), pair_rows(4, offset=50))


def write_lines(path, lines: list) -> None:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))


def test_pairs_are_read_in_both_shapes_and_bad_pairs_are_named_by_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    write_lines(
        path,
        [
            {"prompt": "Name a colour.", "system": "Be kind.", "chosen": "Blue.", "rejected": "I cannot say."},
            {
                "prompt": conversation,
                "chosen": [{"role": "assistant", "content": "Hello!"}],
                "rejected": [{"role": "assistant", "content": "Go away."}],
            },
            {"prompt": "Same?", "chosen": "Yes.", "rejected": "Yes. "},
            {"prompt": [*conversation, {"role": "assistant", "content": "Hello"}], "chosen": "x", "rejected": "y"},
            {"prompt": "Empty", "chosen": "", "rejected": "y"},
            {"prompt": "One side", "chosen": "x"},
        ],
    )
    report = check_dataset(path)
    assert report.format == "preference" and report.valid_records == 2
    assert [(e.line, e.message) for e in report.errors] == [
        (3, "'chosen' and 'rejected' are the same answer: the pair prefers nothing"),
        (4, "the prompt ends on an assistant turn; it must end where the answers begin"),
        (5, "field 'chosen' is empty"),
        (6, "missing field 'rejected'"),
    ]
    write_lines(path, [json.loads(line) for line in path.read_text().splitlines()[:2]])
    first, second = load_records(path)
    assert first.prompt_messages == (
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Name a colour."},
    )
    assert (first.response, first.rejected) == ("Blue.", "I cannot say.")
    assert second.prompt_messages == tuple(conversation) and second.rejected == "Go away."
    assert "Go away." in second.plain_text()  # lint and PII scanning see both answers
    assert second.to_json() == {"prompt": conversation, "chosen": "Hello!", "rejected": "Go away."}


def test_check_counts_prompt_chosen_and_rejected_tokens(tiny_model_dir, pairs):
    counter = load_token_counter(tiny_model_dir)
    report = check_dataset(pairs / "train.jsonl", counter)
    tokens = report.tokens.to_json()
    record = load_records(pairs / "train.jsonl")[0]
    prompt, chosen, rejected = counter.count_pair(record)
    assert chosen > rejected > 0 and prompt > 0  # the chosen answer has the sign-off
    assert tokens["max"] == max(counter.count(r) for r in load_records(pairs / "train.jsonl"))
    assert set(tokens) >= {"prompt", "chosen", "rejected"} and tokens["chosen"]["max"] >= chosen
    assert any(line.startswith("  pairs: prompt median") for line in report.describe())


def test_split_and_append_keep_pairs_whole(tmp_path):
    source = tmp_path / "pairs.jsonl"
    write_lines(source, pair_rows(20))
    counts = split_dataset(source, tmp_path / "split", valid_fraction=0.2)
    records = [r for name in ("train", "valid") for r in load_records(tmp_path / "split" / f"{name}.jsonl")]
    assert counts == {"train": 16, "valid": 4} and all(r.is_preference for r in records)
    assert sorted(r.rejected for r in records) == sorted(row["rejected"] for row in pair_rows(20))
    prompt = [{"role": "user", "content": "Name a colour."}]
    assert append_preference_pair(source, prompt, "Blue.", "No.") == 21
    assert load_records(source)[-1].to_json() == {"prompt": prompt, "chosen": "Blue.", "rejected": "No."}
    with pytest.raises(UserError, match="the same answer"):
        append_preference_pair(source, prompt, "Blue.", "Blue.")
    chat = tmp_path / "chat.jsonl"
    write_dataset(tmp_path / "sft", arithmetic_rows(2))
    chat.write_text((tmp_path / "sft" / "train.jsonl").read_text())
    with pytest.raises(UserError, match="will not append a preference record"):
        append_preference_pair(chat, prompt, "Blue.", "No.")


def test_long_pairs_lose_prompt_tokens_from_the_start(tiny_model_dir, tmp_path):
    _, tokenizer = load_model(tiny_model_dir)
    write_lines(tmp_path / "long.jsonl", [{"prompt": "word " * 60, "chosen": "Short yes.", "rejected": "Short no."}])
    [record] = load_records(tmp_path / "long.jsonl")
    whole, _ = tokenize_pairs([record], tokenizer, 10_000)
    cut, shortened = tokenize_pairs([record], tokenizer, 40)
    assert shortened == 1 and len(cut.chosen[0].tokens) == 40
    answer = whole.chosen[0].tokens[whole.chosen[0].prompt_length :]
    assert cut.chosen[0].tokens[cut.chosen[0].prompt_length :] == answer  # the answer is whole
    assert cut.chosen[0].tokens == whole.chosen[0].tokens[-40:]
    assert tokenize_pairs([record], tokenizer, 10_000)[1] == 0


def test_dpo_reports_rewards_per_step_and_validation_from_a_reference_that_is_the_start(
    tiny_model_dir, pairs, tmp_path
):
    events = []
    outcome = train(tiny_model_dir, pairs, tmp_path / "dpo", events.append, epochs=3, method="dpo")
    assert isinstance(outcome, Finished)
    steps = [e for e in events if e.type == "step"]
    validations = [e for e in events if e.type == "validation"]
    assert steps[0].reward_margin == pytest.approx(0, abs=1e-4)  # before the first update, policy == reference
    assert steps[0].chosen_reward == pytest.approx(0, abs=1e-4)
    assert all(0 <= e.reward_accuracy <= 1 for e in steps + validations)
    assert validations[-1].reward_margin > 0 and validations[-1].reward_accuracy == 1.0
    assert steps[-1].train_loss < steps[0].train_loss
    logged = read_events(tmp_path / "dpo" / "events.jsonl")
    assert [e.reward_margin for e in logged if e.type == "step"] == [e.reward_margin for e in steps]
    meta = json.loads((tmp_path / "dpo" / "lora_tui.json").read_text())
    assert meta["final_val_preference"]["reward_accuracy"] == validations[-1].reward_accuracy
    assert meta["parameters"]["method"] == "dpo"
    info = describe_adapter(tmp_path / "dpo")  # what the Adapters screen's detail lists
    assert info.method == "dpo" and info.reward_accuracy == validations[-1].reward_accuracy


@pytest.mark.parametrize("settings", [{"method": "orpo"}, {"method": "dpo", "dpo_loss": "ipo", "beta": 0.5}])
def test_orpo_and_ipo_train_and_rank_held_out_pairs(tiny_model_dir, pairs, tmp_path, settings):
    events = []
    outcome = train(tiny_model_dir, pairs, tmp_path / "run", events.append, epochs=3, **settings)
    assert isinstance(outcome, Finished)
    validations = [e for e in events if e.type == "validation"]
    assert np.isfinite(validations[-1].val_loss) and validations[-1].reward_margin > validations[0].reward_margin


def test_the_wrong_data_for_a_method_is_refused_with_an_example(tiny_model_dir, pairs, tmp_path):
    sft = write_dataset(tmp_path / "sft", arithmetic_rows(8))
    refused = train(tiny_model_dir, sft, tmp_path / "a", method="dpo")
    assert refused.type == "failed" and "line 1: --method dpo trains on preference pairs" in refused.reason
    assert '"chosen"' in refused.reason
    refused = train(tiny_model_dir, pairs, tmp_path / "b")
    assert refused.type == "failed" and "this is a preference pair; train pairs with --method dpo or orpo" in (
        refused.reason
    )


def test_a_cancelled_dpo_run_resumes_to_the_same_adapter(tiny_model_dir, pairs, tmp_path):
    settings = dict(epochs=2, method="dpo", batch_size=2)
    straight = train(tiny_model_dir, pairs, tmp_path / "straight", **settings)
    stop_midway, stop = stopping_at_step(5)
    cancelled = train(tiny_model_dir, pairs, tmp_path / "resumed", listener=stop_midway, stop=stop, **settings)
    assert isinstance(cancelled, Cancelled)
    resumed = train(tiny_model_dir, pairs, tmp_path / "resumed", resume=True, **settings)
    assert resumed.step == straight.step
    assert_same_adapter(tmp_path / "straight", tmp_path / "resumed")


def test_pair_rewards_count_each_pair():
    policy = np.array([[-1.0, -5.0], [-3.0, -2.0], [-2.0, -2.5]])
    reference = np.zeros((3, 2))
    rewards = pair_rewards(policy, reference, beta=0.1)
    assert rewards.reward_accuracy == pytest.approx(2 / 3)
    assert rewards.reward_margin == pytest.approx(0.1 * (4 - 1 + 0.5) / 3)


def test_eval_of_a_dpo_adapter_ranks_its_held_out_pairs(tiny_model_dir, pairs, isolated_home, capsys):
    from lora_tui.cli import main

    outcome = train(tiny_model_dir, pairs, isolated_home.adapters_dir / "prefers", epochs=3, method="dpo")
    assert isinstance(outcome, Finished)
    assert main(["eval", "--adapter", "prefers", "--max-tokens", "4", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["preference"]["reward_accuracy"] == 1.0 and document["preference"]["reward_margin"] > 0
    assert main(["eval", "--adapter", "prefers", "--max-tokens", "4"]) == 0
    assert "held-out pairs (the base as reference): reward accuracy 100%" in capsys.readouterr().out


def test_redaction_reaches_both_answers_and_keeps_each_pair_on_its_line(tmp_path):
    from lora_tui.core.data.pii import Redactor, redact_file

    source = tmp_path / "pairs.jsonl"
    write_lines(
        source,
        [
            {"prompt": "Contact?", "chosen": "Mail ann@example.com.", "rejected": "Call 555-867-5309."},
            {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."},
        ],
    )
    result = redact_file(source, tmp_path / "clean.jsonl", Redactor(ner=None))
    first, second = load_records(tmp_path / "clean.jsonl")
    assert result.records == 2 and "ann@example.com" not in first.response and "555-867-5309" not in first.rejected
    assert (second.response, second.rejected) == ("Hello!", "Go away.")


def test_dpo_from_an_adapter_starts_from_it_and_takes_it_as_the_reference(
    tiny_model_dir, pairs, isolated_home, tmp_path, capsys
):
    from lora_tui.cli import main

    sft = write_dataset(tmp_path / "sft", arithmetic_rows(8))
    base = ["--model", str(tiny_model_dir), "--max-seq-length", "128", "--epochs", "1"]
    assert main(["train", "--data", str(sft), "--name", "start", "--rank", "4", "--learning-rate", "0.005", *base]) == 0
    assert (
        main(["train", "--data", str(pairs), "--name", "aligned", "--method", "dpo", "--from-adapter", "start", *base])
        == 0
    )
    aligned = isolated_home.adapters_dir / "aligned"
    steps = [e for e in read_events(aligned / "events.jsonl") if e.type == "step"]
    assert steps[0].reward_margin == pytest.approx(0, abs=1e-4)  # the reference is where the run starts
    config = json.loads((aligned / "adapter_config.json").read_text())
    assert config["lora_parameters"]["rank"] == 4  # the starting adapter's shape, not the default 8
    assert json.loads((aligned / "lora_tui.json").read_text())["from_adapter"] == "start"
    out = capsys.readouterr().out
    assert "note: Started from the adapter start." in out


def test_a_method_and_data_that_do_not_fit_are_refused_before_anything_is_written(
    tiny_model_dir, pairs, isolated_home, tmp_path, capsys
):
    from lora_tui.cli import main

    sft = write_dataset(tmp_path / "sft", arithmetic_rows(8))
    assert main(["train", "--model", str(tiny_model_dir), "--data", str(sft), "--name", "x", "--method", "orpo"]) == 1
    err = capsys.readouterr().err
    assert "--method orpo trains on preference pairs, not chat records" in err and '"rejected"' in err
    assert main(["train", "--model", str(tiny_model_dir), "--data", str(pairs), "--name", "y"]) == 1
    assert "these are preference pairs; train them with --method dpo or orpo" in capsys.readouterr().err
    assert not (isolated_home.adapters_dir / "x").exists() and not (isolated_home.adapters_dir / "y").exists()


def test_the_eval_view_summary_shows_held_out_rewards():
    from lora_tui.screens.evaluation import summary_lines

    side = {"label": "adapter", "loss": 0.5, "perplexity": 1.6, "exact": 0.0, "contained": 1.0, "token_f1": 0.9}
    rewards = {"chosen_reward": 0.3, "rejected_reward": -0.1, "reward_margin": 0.4, "reward_accuracy": 0.9}
    lines = summary_lines({"summary": [side], "regressions": 0, "preference": rewards})
    assert lines[-1].startswith("held-out pairs (the base as reference): reward accuracy 90%, margin 0.400")
