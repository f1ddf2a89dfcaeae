import json

import pytest

from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.split import split_dataset
from lora_tui.core.errors import UserError


def _chat(user, assistant):
    return json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]})


def _kinds(report):
    return {(w.line, w.kind) for w in report.warnings}


def test_lint_finds_each_kind(tmp_path):
    long_sentence = " ".join(["word"] * 30) + "."
    lines = [
        _chat("What is LoRA?", "A way to fine-tune with low-rank matrices."),  # 1
        _chat("What is LoRA?", "A way to fine-tune with low-rank matrices."),  # 2 exact duplicate
        _chat("what is lora", "a way to fine tune with low rank matrices"),  # 3 near duplicate
        _chat("Who are you?", "As an AI language model, I cannot have opinions."),  # 4 boilerplate
        _chat("Link?", "See https://example.com/docs for details."),  # 5 url
        _chat("Explain.", long_sentence),  # 6 long sentence
        _chat("Anything?", "k"),  # 7 short response
        _chat("Tell me everything.", "Long answer text. " * 60),  # 8 far longer
        _chat("Q1", "I don't know."),
        _chat("Q2", "I don't know."),
        _chat("Q3", "I don't know."),  # 9-11
    ]
    path = tmp_path / "lint.jsonl"
    path.write_text("\n".join(lines) + "\n")
    kinds = _kinds(check_dataset(path))
    for expected in [
        (2, "duplicate"),
        (3, "near-duplicate"),
        (4, "boilerplate"),
        (5, "url"),
        (6, "long-sentence"),
        (7, "short-response"),
        (8, "long-response"),
        (9, "repeated-response"),
    ]:
        assert expected in kinds
    assert (1, "duplicate") not in kinds
    assert (11, "repeated-response") not in kinds  # one warning per repeated response, at its first line


def test_a_repeated_response_is_one_warning_naming_its_lines(tmp_path):
    path = tmp_path / "repeated.jsonl"
    path.write_text("\n".join(_chat(f"Question {i}?", "Yes." if i % 2 else f"Answer {i}.") for i in range(20)) + "\n")
    [warning] = check_dataset(path).warnings
    assert (warning.line, warning.kind) == (2, "repeated-response")
    assert warning.message == "the same response appears in 10 records: lines 2, 4, 6, 8, 10 and 5 more"


def test_clean_data_has_no_warnings(tmp_path):
    path = tmp_path / "clean.jsonl"
    path.write_text("\n".join(_chat(f"Question {i}?", f"Answer number {i} is short.") for i in range(10)) + "\n")
    assert check_dataset(path).warnings == []


def _dataset(tmp_path, count=100, duplicates=0):
    lines = [_chat(f"Question {i}?", f"Answer {i}.") for i in range(count)]
    lines += [_chat("Question 7?", "Answer 7.")] * duplicates
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _read(folder, name):
    return (folder / f"{name}.jsonl").read_text().splitlines()


def test_split_sizes_and_determinism(tmp_path):
    path = _dataset(tmp_path)
    counts = split_dataset(path, tmp_path / "a", 0.1, 0.1, seed=3)
    assert counts == {"train": 80, "valid": 10, "test": 10}
    split_dataset(path, tmp_path / "b", 0.1, 0.1, seed=3)
    split_dataset(path, tmp_path / "c", 0.1, 0.1, seed=4)
    for name in ("train", "valid", "test"):
        assert _read(tmp_path / "a", name) == _read(tmp_path / "b", name)
    assert _read(tmp_path / "a", "valid") != _read(tmp_path / "c", "valid")
    everything = sorted(line for split in ("train", "valid", "test") for line in _read(tmp_path / "a", split))
    assert everything == sorted(path.read_text().splitlines())


def test_duplicates_never_straddle_sets(tmp_path):
    path = _dataset(tmp_path, count=30, duplicates=5)
    for seed in range(10):
        out = tmp_path / f"s{seed}"
        split_dataset(path, out, 0.3, 0.2, seed=seed)
        holders = [name for name in ("train", "valid", "test") if _chat("Question 7?", "Answer 7.") in _read(out, name)]
        assert len(holders) == 1


def test_split_refuses_to_overwrite_and_bad_data(tmp_path):
    path = _dataset(tmp_path, count=10)
    split_dataset(path, tmp_path / "out")
    before = (tmp_path / "out" / "train.jsonl").read_text()
    with pytest.raises(UserError, match="Will not overwrite"):
        split_dataset(path, tmp_path / "out")
    assert (tmp_path / "out" / "train.jsonl").read_text() == before
    broken = tmp_path / "broken.jsonl"
    broken.write_text(_chat("a", "b") + "\nnot json\n")
    with pytest.raises(UserError, match="line 2: invalid JSON"):
        split_dataset(broken, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_split_plain_text_writes_text_records(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"example {i}\n" for i in range(10)))
    split_dataset(path, tmp_path / "out", 0.2)
    assert json.loads(_read(tmp_path / "out", "valid")[0])["text"].startswith("example")
