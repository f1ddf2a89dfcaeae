"""`lora-tui eval`: loss as training computes it, answers scored against references, regressions, drift, reports."""

import json

import pytest
from trainkit import arithmetic_rows, train, write_dataset

from lora_tui.cli import main
from lora_tui.core.data.records import Record
from lora_tui.core.evaluation.run import Evaluation, Side, eval_records, evaluate, measure_drift
from lora_tui.core.evaluation.scores import score
from lora_tui.core.training.events import Validation


def test_scores_normalize_and_overlap():
    assert score("The capital is Paris.", "the capital is paris").exact
    assert score("Well, the capital is Paris, of course.", "The capital is Paris.").contained
    assert not score("Lyon", "Paris").contained and score("Lyon", "Paris").token_f1 == 0
    assert 0 < score("It is 12.", "It is 14.").token_f1 < 1
    assert score("abc", "abc").chrf == pytest.approx(100.0)


def test_eval_loss_is_the_trainers_validation_loss(tiny_model_dir, tmp_path):
    data = write_dataset(tmp_path / "data", arithmetic_rows(16), arithmetic_rows(4, offset=50))
    events = []
    outcome = train(tiny_model_dir, data, tmp_path / "arith", events.append, epochs=2, learning_rate=5e-3)
    assert outcome.type == "finished"
    last_validation = [e for e in events if isinstance(e, Validation)][-1]
    _, records = eval_records(data / "valid.jsonl")
    evaluation = evaluate(tiny_model_dir, records, [("adapter", tmp_path / "arith")], max_tokens=4, max_seq_length=128)
    assert evaluation.sides[0].mean_loss() == pytest.approx(last_validation.val_loss, rel=1e-4)


def test_a_record_the_base_got_right_and_the_adapter_lost_is_a_regression():
    records = [
        Record(
            1, messages=({"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"})
        ),
        Record(2, messages=({"role": "user", "content": "2 plus 2?"}, {"role": "assistant", "content": "4"})),
        Record(3, text="plain text has no reference"),
    ]
    base = Side("base", [(1.0, 1)] * 3, ["It is Paris.", "5", None])
    adapter = Side("adapter", [(0.5, 1)] * 3, ["It is Lyon.", "It is 4.", None])
    evaluation = Evaluation("made up", records, [base, adapter])
    assert evaluation.regressions() == [0]  # the base knew Paris; 2 plus 2 got better, not worse
    document = evaluation.to_json()
    assert document["regressions"] == 1 and document["records"][0]["regression"]
    assert document["records"][2]["adapter"]["scores"] is None  # loss only
    assert document["summary"][1]["answered"] == 2 and document["summary"][1]["contained"] == 0.5


def test_the_base_against_itself_has_no_drift(tiny_model_dir):
    drift = measure_drift(tiny_model_dir, None, max_tokens=6)
    assert drift["prompts"] == 24 and drift["drift"] == 0 and drift["changed"] == 0


def test_eval_cli_prints_a_table_saves_a_report_and_refuses_bad_data(tiny_model_dir, isolated_home, tmp_path, capsys):
    data = write_dataset(tmp_path / "data", arithmetic_rows(16), arithmetic_rows(4, offset=50))
    assert train(tiny_model_dir, data, isolated_home.adapters_dir / "arith", epochs=1).type == "finished"
    assert main(["eval", "--adapter", "arith", "--max-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("MODEL") and "\nbase " in out and "\nadapter " in out and "regressions" in out
    reports = list((isolated_home.adapters_dir / "arith" / "evals").glob("*.json"))
    assert len(reports) == 1 and len(json.loads(reports[0].read_text())["records"]) == 4  # valid.jsonl
    meta = json.loads((isolated_home.adapters_dir / "arith" / "lora_tui.json").read_text())
    assert meta["last_evaluation"]["summary"][1]["label"] == "adapter"
    assert main(["eval", "--adapter", "arith", "--max-tokens", "4", "--json", "--limit", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)["records"]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n')
    assert main(["eval", "--adapter", "arith", "--data", str(bad)]) == 1
    assert "has errors; fix them before evaluating" in capsys.readouterr().err


def test_eval_prints_its_results_even_when_the_report_cannot_be_saved(tiny_adapter, isolated_home, monkeypatch, capsys):
    import errno
    import shutil

    import lora_tui.core.evaluation.report as report

    shutil.copytree(tiny_adapter, isolated_home.adapters_dir / "arith")

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(report, "write_json", full_disk)
    assert main(["eval", "--adapter", "arith", "--max-tokens", "4", "--limit", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("MODEL") and "\nadapter " in captured.out
    assert "evals: the disk is full; the results are above." in captured.err and "Traceback" not in captured.err
