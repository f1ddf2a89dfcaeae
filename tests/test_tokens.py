"""Token budgets: tiktoken counts must equal the model's own tokenizer's, exactly."""

import json

import pytest

from lora_tui.cli import main
from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.records import Record
from lora_tui.core.data.tokens import PROBE_TEXTS, load_token_counter

VARIED = [
    *PROBE_TEXTS,
    "```python\nimport numpy as np\nx = np.zeros((3, 4))  # 12 zeros\n```",
    "🙂" * 7 + " 👩\u200d👩\u200d👧\u200d👦 " + "🇫🇷🇯🇵",
    "东京是日本的首都。ソウルは韓国の首都です。",
    " " * 17 + "\t" * 5 + "\n" * 4 + "x",
    "1234567890 0.000001 -42 1e9 ١٢٣",
]


def _record(user, assistant):
    return Record(1, messages=({"role": "user", "content": user}, {"role": "assistant", "content": assistant}))


def _assert_exact(counter):
    for text in VARIED:
        assert counter.count_text(text) == len(counter.hf.encode(text, add_special_tokens=False)), text
        record = _record(text, text[::-1])
        assert counter.count(record) == len(
            counter.hf.apply_chat_template(list(record.messages), tokenize=True, return_dict=False)
        )


def test_tiny_model_counts_are_exact_with_tiktoken(tiny_model_dir):
    counter = load_token_counter(tiny_model_dir)
    assert counter.name == "tiktoken"
    _assert_exact(counter)


def test_text_records_count_bos_and_eos(tiny_model_dir):
    counter = load_token_counter(tiny_model_dir)
    text = "Plain text record."
    assert counter.count(Record(1, text=text)) == len(counter.hf.encode(text)) + 1


def test_non_byte_level_tokenizer_falls_back_to_the_model_tokenizer(tiny_model_dir, tmp_path):
    import shutil

    folder = shutil.copytree(tiny_model_dir, tmp_path / "odd")
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Whitespace"}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    counter = load_token_counter(folder)
    assert counter.name == "model tokenizer"
    _assert_exact(counter)


def test_check_json_document_with_tokens(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    sizes = (1, 5, 20, 400)
    path.write_text("".join(json.dumps({"prompt": "word " * n, "completion": "ok"}) + "\n" for n in sizes))
    counter = load_token_counter(tiny_model_dir)
    expected = [
        len(
            counter.hf.apply_chat_template(
                [{"role": "user", "content": "word " * n}, {"role": "assistant", "content": "ok"}],
                tokenize=True,
                return_dict=False,
            )
        )
        for n in sizes
    ]
    limit = (expected[2] + expected[3]) // 2
    assert (
        main(["data", "check", str(path), "--model", str(tiny_model_dir), "--max-seq-length", str(limit), "--json"])
        == 0
    )
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {
        "path",
        "format",
        "source",
        "columns",
        "records",
        "valid_records",
        "errors",
        "warnings",
        "tokens",
    }
    tokens = document["tokens"]
    assert set(tokens) == {
        "tokenizer",
        "exact",
        "min",
        "median",
        "p75",
        "p95",
        "max",
        "mean",
        "total",
        "max_seq_length",
        "over_limit",
    }
    assert tokens["exact"] and tokens["over_limit"] == 1 and tokens["max_seq_length"] == limit
    assert (tokens["min"], tokens["max"], tokens["total"]) == (min(expected), max(expected), sum(expected))


def test_check_without_model_has_null_tokens_and_exit_codes(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "fine"}\n')
    assert main(["data", "check", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] is None
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nbroken\n')
    assert main(["data", "check", str(bad)]) == 1
    assert "line 2: invalid JSON" in capsys.readouterr().out


@pytest.mark.e2e
def test_demo_model_counts_are_exact_with_tiktoken(demo_model_dir):
    counter = load_token_counter(demo_model_dir)
    assert counter.name == "tiktoken"
    _assert_exact(counter)


@pytest.mark.e2e
def test_demo_model_token_budget(demo_model_dir, tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]})
        + "\n"
    )
    counter = load_token_counter(demo_model_dir)
    report = check_dataset(path, counter)
    rendered = counter.hf.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}],
        tokenize=True,
        return_dict=False,
    )
    assert report.tokens.to_json()["total"] == len(rendered)


def test_budget_counts_what_training_tokenizes(tiny_model_dir):
    """The budget shown is what trains: the counter agrees with batching.tokenize record by record."""
    from lora_tui.core.models.store import load_model
    from lora_tui.core.training.batching import tokenize

    counter = load_token_counter(tiny_model_dir)
    _, tokenizer = load_model(tiny_model_dir)
    records = [_record(text, text[::-1]) for text in VARIED] + [Record(2, text=text) for text in VARIED]
    examples, _ = tokenize(records, tokenizer, max_seq_length=100_000)
    assert [counter.count(r) for r in records] == [len(e.tokens) for e in examples]


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory):
    """A tiny model with no chat template (as Gemma 3 270M and other pretrained models have none)."""
    from tinymodels import make_tiny_model

    config = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    return make_tiny_model(tmp_path_factory.mktemp("base") / "base", tokenizer_config=config)


def test_without_a_chat_template_a_prompt_continues_into_its_completion(base_model_dir):
    from mlx_lm import load

    from lora_tui.core.training.batching import tokenize

    _, tokenizer = load(str(base_model_dir))
    counter = load_token_counter(base_model_dir)
    record = Record(
        3,
        messages=(
            {"role": "system", "content": "Facts only."},
            {"role": "user", "content": "Q: What is the capital of France?\nA:"},
            {"role": "assistant", "content": " Paris."},
        ),
    )
    [example], _ = tokenize([record], tokenizer, 256)
    text = "Facts only.\n\nQ: What is the capital of France?\nA: Paris."
    expected = [*tokenizer.encode(text), tokenizer.eos_token_id]
    assert list(example.tokens) == expected
    assert counter.count(record) == len(expected)  # data check counts what training trains
    prompt = tokenizer.encode("Facts only.\n\nQ: What is the capital of France?\nA:")
    assert example.prompt_length == len(prompt)  # the prompt is masked, the completion and EOS trained


def test_without_a_chat_template_a_conversation_of_several_turns_is_one_sentence(base_model_dir):
    from mlx_lm import load

    from lora_tui.core.errors import UserError
    from lora_tui.core.training.batching import tokenize

    _, tokenizer = load(str(base_model_dir))
    turns = ({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}) * 2
    with pytest.raises(UserError, match="line 7: the model has no chat template, so a conversation of several turns"):
        tokenize([Record(7, messages=turns)], tokenizer, 256)
