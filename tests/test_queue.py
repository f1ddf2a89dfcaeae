"""Sweeps and the run queue: a grid checked before any run, queued runs one at a time, failures and Ctrl-C."""

import json
import os
import signal
import subprocess
import sys

import pytest
from trainkit import arithmetic_rows, write_dataset

from lora_tui.cli import main
from lora_tui.core.training.queue import RunQueue
from lora_tui.core.training.sweeps import expand_grid, parse_sweep


@pytest.fixture
def data(tmp_path):
    return write_dataset(tmp_path / "data", arithmetic_rows(16), arithmetic_rows(4, offset=100))


def _run(model, data, name, *extra):
    """`train` arguments of a short run."""
    return ["--model", str(model), "--data", str(data), "--name", name, *SHORT, *extra]


SHORT = ["--epochs", "1", "--batch-size", "4", "--max-seq-length", "64"]


def _jobs(home):
    return [(job.name, job.status) for job in RunQueue(home.data_dir).jobs()]


def test_a_grid_is_named_from_the_values_as_typed():
    points = expand_grid("tone", [parse_sweep("learning-rate=1e-4,3e-4"), parse_sweep("rank=8,16")], {})
    assert [p.name for p in points] == ["tone-lr1e-4-r8", "tone-lr1e-4-r16", "tone-lr3e-4-r8", "tone-lr3e-4-r16"]
    assert points[1].values == {"learning_rate": 1e-4, "rank": 16}
    assert parse_sweep("target-modules=q,v;q,k,v,o").values == (["q", "v"], ["q", "k", "v", "o"])
    named = expand_grid("t", [parse_sweep("dropout=0.05,0.1"), parse_sweep("target-modules=q,v;q,k,v,o")], {})
    assert [p.name for p in named] == ["t-d0p05-mq_v", "t-d0p05-mq_k_v_o", "t-d0p1-mq_v", "t-d0p1-mq_k_v_o"]


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ("rank", "write PARAMETER=V1,V2"),
        ("colour=1,2", "not a training parameter that can be swept"),
        ("rank=8,999", "rank must be between 4 and 128 (got 999)"),
        ("rank=8", "give two or more values"),
        ("rank=8,8", "a value is given twice"),
    ],
)
def test_a_malformed_sweep_is_refused_before_anything_runs(tiny_model_dir, data, isolated_home, capsys, sweep, message):
    assert main(["train", *_run(tiny_model_dir, data, "tone"), "--sweep", sweep]) == 1
    assert message in capsys.readouterr().err
    assert not isolated_home.adapters_dir.exists() or not list(isolated_home.adapters_dir.iterdir())


def test_a_sweep_runs_its_grid_and_is_ranked(tiny_model_dir, data, isolated_home, capsys):
    args = _run(tiny_model_dir, data, "tone", "--sweep", "learning-rate=1e-4,1e-2", "--sweep", "rank=4,8")
    assert main(["train", *args]) == 0
    names = sorted(p.name for p in isolated_home.adapters_dir.iterdir() if not p.name.startswith("."))
    assert names == ["tone-lr1e-2-r4", "tone-lr1e-2-r8", "tone-lr1e-4-r4", "tone-lr1e-4-r8"]
    meta = json.loads((isolated_home.adapters_dir / "tone-lr1e-2-r8" / "lora_tui.json").read_text())
    assert meta["sweep"] == {"name": "tone", "values": {"learning_rate": 0.01, "rank": 8}}
    assert meta["parameters"]["learning_rate"] == 0.01 and meta["parameters"]["rank"] == 8
    capsys.readouterr()
    assert main(["sweep", "show", "tone", "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)["runs"]
    losses = [run["best_val_loss"] for run in ranked]
    assert len(ranked) == 4 and losses == sorted(losses)
    assert main(["sweep", "show", "tone"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "RANK",
        "ADAPTER",
        "learning-rate",
        "rank",
        "BEST",
        "VAL",
        "TRAIN",
        "EVAL",
        "F1",
        "STATUS",
    ]
    assert table[1].split()[1] == ranked[0]["name"]


def test_one_bad_run_in_a_grid_refuses_the_whole_sweep(tiny_model_dir, data, isolated_home, capsys):
    (isolated_home.adapters_dir / "tone-r8").mkdir(parents=True)  # a name the grid would take
    assert main(["train", *_run(tiny_model_dir, data, "tone"), "--sweep", "rank=4,8"]) == 1
    assert "An adapter named 'tone-r8' already exists" in capsys.readouterr().err
    assert not (isolated_home.adapters_dir / "tone-r4").exists()  # the good run did not start either


def test_queue_add_checks_each_run_as_train_does(tiny_model_dir, data, isolated_home, capsys):
    assert main(["queue", "add", "--", *_run(tiny_model_dir, data, "solo")]) == 0
    refused = [
        (_run(tiny_model_dir, data.parent / "missing.jsonl", "x"), "no such file or folder"),
        (_run(tiny_model_dir, data, "solo"), "The queue already has a run named 'solo'"),
        ([*_run(tiny_model_dir, data, "y"), "--rank", "200"], "--rank must be between 4 and 128"),
    ]
    for args, message in refused:
        capsys.readouterr()
        assert main(["queue", "add", "--", *args]) == 1
        assert message in capsys.readouterr().err
    assert main(["train", *_run(tiny_model_dir, data, "night"), "--sweep", "rank=4,8", "--queue"]) == 0
    assert _jobs(isolated_home) == [("solo", "pending"), ("night-r4", "pending"), ("night-r8", "pending")]
    assert main(["queue", "remove", "1"]) == 0
    assert main(["queue", "remove", "9"]) == 1
    assert [job.sweep for job in RunQueue(isolated_home.data_dir).jobs()] == ["night", "night"]
    assert main(["queue", "clear"]) == 0 and _jobs(isolated_home) == []


def test_the_runner_marks_a_failed_job_and_goes_on(tiny_model_dir, data, tmp_path, isolated_home, capsys):
    doomed = tmp_path / "doomed.jsonl"
    doomed.write_text((data / "train.jsonl").read_text())
    assert main(["queue", "add", "--", *_run(tiny_model_dir, doomed, "doomed")]) == 0
    assert main(["queue", "add", "--", *_run(tiny_model_dir, data, "fine")]) == 0
    doomed.unlink()  # its data disappears before it runs
    assert main(["queue", "run"]) == 0
    capsys.readouterr()
    assert main(["queue", "list", "--json"]) == 0
    jobs = json.loads(capsys.readouterr().out)["jobs"]
    assert [(job["name"], job["status"]) for job in jobs] == [("doomed", "failed"), ("fine", "finished")]
    assert "doomed.jsonl: no such file or folder" in jobs[0]["reason"] and jobs[1]["ended"]
    assert (isolated_home.adapters_dir / "fine" / "adapters.safetensors").is_file()


def test_adding_from_two_processes_at_once_loses_nothing(isolated_home):
    script = (
        "import sys; from pathlib import Path; from lora_tui.core.training.queue import RunQueue\n"
        "queue = RunQueue(Path(sys.argv[1]))\n"
        "for i in range(15): queue.add(f'{sys.argv[2]}-{i}', ['--name', f'{sys.argv[2]}-{i}'])\n"
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", script, str(isolated_home.data_dir), tag]) for tag in ("a", "b", "c")
    ]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0]
    jobs = RunQueue(isolated_home.data_dir).jobs()
    assert len(jobs) == 45 and len({job.id for job in jobs}) == 45


def test_one_runner_at_a_time_and_a_queue_file_in_nonsense(isolated_home, capsys):
    queue = RunQueue(isolated_home.data_dir)
    with queue.runner():
        assert main(["queue", "run"]) == 1
        assert f"The queue is being run already (pid {os.getpid()}" in capsys.readouterr().err
    queue.path.write_text('{"jobs": [{"id": "one"}]}')
    for command in (["queue", "list"], ["queue", "add", "--", "--name", "x"], ["queue", "run"]):
        assert main(command) == 1
        assert "not a queue lora-tui can read" in capsys.readouterr().err
    assert queue.path.read_text() == '{"jobs": [{"id": "one"}]}'  # left for the user to fix


def test_ctrl_c_stops_the_current_run_saved_and_leaves_the_rest_pending(tiny_model_dir, data, isolated_home):
    long = [*_run(tiny_model_dir, data, "first"), "--epochs", "40", "--save-every", "2"]
    assert main(["queue", "add", "--", *long]) == 0
    assert main(["queue", "add", "--", *_run(tiny_model_dir, data, "second")]) == 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    runner = subprocess.Popen(  # its own process group, as a terminal's foreground job is
        [sys.executable, "-m", "lora_tui", "queue", "run"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    for line in runner.stdout:
        if line.startswith("checkpoint step 4"):
            break
    os.killpg(runner.pid, signal.SIGINT)  # Ctrl-C: the runner and its run both get it
    runner.stdout.read()
    assert runner.wait(timeout=120) == 130
    assert _jobs(isolated_home) == [("first", "cancelled"), ("second", "pending")]
    meta = json.loads((isolated_home.adapters_dir / "first" / "lora_tui.json").read_text())
    assert meta["status"] == "cancelled" and meta["steps"] >= 4


def test_a_queued_run_keeps_absolute_paths(tiny_model_dir, data, isolated_home, monkeypatch):
    monkeypatch.chdir(data.parent)
    assert main(["queue", "add", "--", *_run(tiny_model_dir, "data", "here")]) == 0
    arguments = RunQueue(isolated_home.data_dir).jobs()[0].args
    assert arguments[arguments.index("--data") + 1] == str(data)
