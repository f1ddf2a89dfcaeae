"""Damaged and unfinished adapters: listed with what is wrong, never hiding the others, and deletable;
anything that would load one refuses it in one sentence."""

import json
import shutil

import pytest

from lora_tui.cli import main
from lora_tui.core.adapters.registry import list_adapters

GOOD_CONFIG = {"fine_tune_type": "lora", "num_layers": 2, "lora_parameters": {"rank": 8, "scale": 2.0, "dropout": 0.0}}


@pytest.fixture
def adapters_dir(isolated_home, tiny_adapter):
    shutil.copytree(tiny_adapter, isolated_home.adapters_dir / "good")
    shutil.copytree(tiny_adapter, isolated_home.adapters_dir / "a1")
    return isolated_home.adapters_dir


def _listed(capsys) -> dict:
    assert main(["adapters", "list", "--json"]) == 0
    return {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"this is not json {", "lora_tui.json: not valid JSON (Expecting value, line 1)"),
        (b"[]", "lora_tui.json: holds a JSON list where an object of settings belongs"),
        (b'{"parameters": 5}', "lora_tui.json: its parameters are a JSON int, not an object"),
        (b"\xff\xfe\x00bad", "lora_tui.json: not UTF-8 text"),
    ],
)
def test_a_bad_metadata_file_is_listed_as_broken_and_hides_no_other(adapters_dir, capsys, content, said):
    (adapters_dir / "a1" / "lora_tui.json").write_bytes(content)
    listed = _listed(capsys)
    assert listed["good"]["status"] == "finished" and listed["good"]["problem"] is None
    assert listed["a1"]["status"] == "broken" and said in listed["a1"]["problem"]
    assert main(["adapters", "list"]) == 0
    captured = capsys.readouterr()
    assert "good" in captured.out and "a1" in captured.out and said in captured.err


@pytest.mark.parametrize(
    ("config", "said"),
    [
        ([], "holds a JSON list where an object of settings belongs"),
        (None, "holds null where an object of settings belongs"),
        ({}, "num_layers is None, not a whole number"),
        ({"num_layers": 16}, "it has no lora_parameters"),
        ({**GOOD_CONFIG, "lora_parameters": {"rank": "eight", "scale": 2.0, "dropout": 0.0}}, "rank is 'eight'"),
        ({**GOOD_CONFIG, "lora_parameters": {"rank": 8, "scale": 2.0}}, "lora_parameters.dropout is None"),
    ],
)
def test_an_incomplete_adapter_config_is_refused_before_mlx_lm_sees_it(adapters_dir, capsys, config, said):
    (adapters_dir / "a1" / "adapter_config.json").write_text(json.dumps(config))
    listed = _listed(capsys)
    assert listed["a1"]["status"] == "broken" and said in listed["a1"]["problem"]
    assert main(["chat", "--adapter", "a1", "--prompt", "hi", "--max-tokens", "2"]) == 1
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    for command in (["eval", "--adapter", "a1"], ["adapters", "fuse", "a1", "--out", str(adapters_dir / "f")]):
        assert main(command) == 1
        assert said in capsys.readouterr().err


def test_a_broken_adapter_can_be_shown_renamed_and_deleted(adapters_dir, capsys):
    (adapters_dir / "a1" / "lora_tui.json").write_text("{")
    assert main(["adapters", "show", "a1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "broken"
    assert main(["adapters", "rename", "a1", "a2"]) == 0
    assert main(["adapters", "delete", "a2", "--yes"]) == 0
    assert [a.name for a in list_adapters(adapters_dir)] == ["good"]


def _ghost(adapters_dir, name: str, last_event: dict, checkpoint: bool = False):
    folder = adapters_dir / name
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"model": "tiny", "data": "data/"}))
    events = [{"type": "started", "step": 0}, last_event]
    (folder / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in events))
    if checkpoint:
        step = folder / "checkpoints" / "step-0000004"
        shutil.copytree(adapters_dir / "good", step, ignore=shutil.ignore_patterns("checkpoints", "events.jsonl"))
        (step / "progress.json").write_text(json.dumps({"step": 4}))
    return folder


def test_a_run_that_never_saved_weights_is_listed_with_its_last_event_and_can_be_deleted(adapters_dir, capsys):
    _ghost(adapters_dir, "crashed", {"type": "failed", "message": "the model could not be loaded"})
    _ghost(adapters_dir, "killed", {"type": "step", "step": 3})
    listed = _listed(capsys)
    assert listed["crashed"]["status"] == "failed"
    assert (
        "before saving any weights (last event: failed: the model could not be loaded)" in listed["crashed"]["problem"]
    )
    assert listed["killed"]["status"] == "no weights yet" and "(last event: step)" in listed["killed"]["problem"]
    assert main(["adapters", "delete", "crashed", "--yes"]) == 0
    assert "crashed" not in _listed(capsys)


def test_a_run_killed_after_a_checkpoint_is_listed_as_resumable(adapters_dir, capsys):
    _ghost(adapters_dir, "halfway", {"type": "checkpoint", "step": 4}, checkpoint=True)
    listed = _listed(capsys)
    assert listed["halfway"]["status"] == "no weights yet"
    assert "stopped after step-0000004" in listed["halfway"]["problem"] and "--resume" in listed["halfway"]["problem"]
    assert main(["adapters", "checkpoints", "halfway", "--json"]) == 0
    assert [c["step"] for c in json.loads(capsys.readouterr().out)] == [4]


def test_renaming_an_adapter_to_its_own_name_says_so(adapters_dir, capsys):
    assert main(["adapters", "rename", "good", "good"]) == 1
    assert capsys.readouterr().err.strip() == "lora-tui: The adapter is already named 'good'."
