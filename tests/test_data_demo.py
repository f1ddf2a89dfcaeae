"""`lora-tui data demo`: a first dataset of made-up facts, split so that evaluation asks new questions."""

import json

from lora_tui.cli import main
from lora_tui.core.data.check import check_dataset


def _questions(path) -> set[str]:
    return {json.loads(line)["messages"][1]["content"] for line in path.read_text().splitlines()}


def test_the_demo_dataset_is_valid_and_tests_questions_it_never_trains_on(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["data", "demo", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["test.jsonl", "train.jsonl", "valid.jsonl"]
    report = check_dataset(out)
    assert report.ok and report.splits == {"train": 48, "valid": 16, "test": 16}
    assert not _questions(out / "test.jsonl") & _questions(out / "train.jsonl")
    assert "train.jsonl: 48 records" in capsys.readouterr().out


def test_an_existing_folder_is_never_written_into(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.jsonl").write_text("keep me\n")
    assert main(["data", "demo", "--out", str(tmp_path / "mine")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "mine" / "train.jsonl").read_text() == "keep me\n"


def test_the_demo_pairs_prefer_the_sign_off_and_hold_out_their_questions(tmp_path, capsys):
    out = tmp_path / "pairs"
    assert main(["data", "demo", "--pairs", "--out", str(out)]) == 0
    report = check_dataset(out)
    assert report.ok and report.format == "preference" and report.splits == {"train": 30, "valid": 9, "test": 9}
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert all(row["chosen"] == row["rejected"] + " Happy to help!" for row in rows)
    prompts = lambda split: {json.loads(line)["prompt"] for line in (out / split).read_text().splitlines()}  # noqa: E731
    assert not prompts("test.jsonl") & prompts("train.jsonl")
    assert "--preset preference" in capsys.readouterr().err
