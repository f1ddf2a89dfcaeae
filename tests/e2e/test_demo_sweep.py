"""A sweep of 4 short runs on the demo model, queued and run by the queue runner, then ranked."""

import json

import pytest
from trainkit import arithmetic_rows, write_dataset

from lora_tui.cli import main
from lora_tui.core.training.queue import RunQueue

pytestmark = pytest.mark.e2e


def test_a_queued_sweep_of_four_runs_on_the_demo_model(demo_model_dir, tmp_path, isolated_home, capsys):
    data = write_dataset(tmp_path / "data", arithmetic_rows(8), arithmetic_rows(4, offset=100))
    args = ["train", "--model", str(demo_model_dir), "--data", str(data), "--name", "tone", "--epochs", "1"]
    args += ["--batch-size", "4", "--max-seq-length", "48", "--sweep", "learning-rate=1e-5,1e-3"]
    assert main([*args, "--sweep", "rank=4,8", "--queue"]) == 0
    assert main(["queue", "run"]) == 0
    assert [job.status for job in RunQueue(isolated_home.data_dir).jobs()] == ["finished"] * 4
    capsys.readouterr()
    assert main(["sweep", "show", "tone", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    names = ["tone-lr1e-3-r4", "tone-lr1e-3-r8", "tone-lr1e-5-r4", "tone-lr1e-5-r8"]
    assert sorted(run["name"] for run in runs) == names
    losses = [run["best_val_loss"] for run in runs]
    assert losses == sorted(losses)
    # A learning rate 100x higher moves two steps' validation loss further from the base: it ranks first.
    assert runs[0]["values"]["learning_rate"] == 0.001
