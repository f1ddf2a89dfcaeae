"""Data-parallel training with two local ranks (mlx.launch, ring backend, loopback only)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from trainkit import arithmetic_rows, spawn_lora_tui, write_dataset

from lora_tui.cli import main
from lora_tui.core.training.events import read_events

FLAGS = [
    "--batch-size",
    "8",
    "--epochs",
    "2",
    "--learning-rate",
    "0.001",
    "--max-seq-length",
    "128",
    "--steps-per-eval",
    "2",
]


@pytest.fixture
def data(tmp_path):
    # Prompts of varied length, so the two ranks' halves of a batch hold different numbers of target tokens.
    rows = arithmetic_rows(20) + [
        {
            "messages": [
                {"role": "user", "content": "Say the number " + "very " * i + f"{i}."},
                {"role": "assistant", "content": f"{i}" * (1 + i % 4)},
            ]
        }
        for i in range(12)
    ]
    return write_dataset(tmp_path / "data", rows, arithmetic_rows(8, offset=50))


def _train(name, model, data, *extra):
    return ["train", "--model", str(model), "--data", str(data), "--name", name, *FLAGS, *extra]


def _losses(adapter_dir: Path):
    events = read_events(adapter_dir / "events.jsonl")
    return ([e.train_loss for e in events if e.type == "step"], [e.val_loss for e in events if e.type == "validation"])


def test_two_ranks_train_exactly_like_one_process(tiny_model_dir, data, isolated_home, capsys):
    assert main(_train("one", tiny_model_dir, data)) == 0
    assert main(_train("two", tiny_model_dir, data, "--ranks", "2")) == 0
    out = capsys.readouterr().out
    assert out.count("finished (completed)") == 2 and out.count("started: ") == 2  # rank 1 prints nothing
    one, two = isolated_home.adapters_dir / "one", isolated_home.adapters_dir / "two"
    (train_one, valid_one), (train_two, valid_two) = _losses(one), _losses(two)
    assert len(train_one) == 8 and len(valid_one) >= 4
    np.testing.assert_allclose(train_two, train_one, rtol=1e-4)
    np.testing.assert_allclose(valid_two, valid_one, rtol=1e-4)
    weights_one, weights_two = mx.load(str(one / "adapters.safetensors")), mx.load(str(two / "adapters.safetensors"))
    for key, value in weights_one.items():
        np.testing.assert_allclose(np.array(weights_two[key]), np.array(value), atol=1e-5)
    started = next(e for e in read_events(two / "events.jsonl") if e.type == "started")
    assert started.ranks == 2


def test_a_hostfile_of_loopback_ranks_trains(tiny_model_dir, data, isolated_home, tmp_path, capsys):
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}] * 2))
    assert main(_train("hosted", tiny_model_dir, data, "--hosts", str(hostfile), "--epochs", "1")) == 0
    assert "finished (completed) at step 4" in capsys.readouterr().out


def test_batch_that_does_not_split_is_refused(tiny_model_dir, data, isolated_home, capsys):
    assert main(_train("odd", tiny_model_dir, data, "--ranks", "3")) == 1
    assert "must split evenly across 3 ranks; use a multiple of 3" in capsys.readouterr().err
    assert not (isolated_home.adapters_dir / "odd").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ('[{"ssh": "a",', "line 1: not valid JSON"),
        (
            '[{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}, {"ssh": "mac-2", "ips": ["10.0.0.2"]}, '
            '{"ssh": "mac-2", "ips": ["10.0.0.2"]}]',
            "host 3 (mac-2) is already host 2",
        ),
        ('[{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}]', "name at least two hosts"),
        ('[{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}, {"ssh": "mac-2"}]', 'host 2 (mac-2) has no "ips"'),
        (
            '[{"ssh": "mac-2", "ips": ["10.0.0.2"]}, {"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}]',
            "the first host must be this machine",
        ),
        (
            '[{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}, {"ssh": "nowhere.invalid", "ips": ["10.255.0.9"]}]',
            "Host nowhere.invalid cannot be reached over SSH",
        ),
    ],
)
def test_bad_hostfiles_are_refused_before_anything_is_written(
    tiny_model_dir, data, isolated_home, tmp_path, capsys, content, message
):
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(content)
    assert main(_train("remote", tiny_model_dir, data, "--hosts", str(hostfile))) == 1
    assert message in capsys.readouterr().err
    assert not (isolated_home.adapters_dir / "remote").exists()


def _wait_for_event(events_file: Path, kind: str, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if events_file.exists() and any(e.type == kind for e in read_events(events_file)):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {kind} event in {events_file}")


def _rank_pid(rank: int) -> int:
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
            environment = (entry / "environ").read_bytes()
        except (OSError, ValueError):
            continue
        if b"lora_tui.rank" in command and f"MLX_RANK={rank}\0".encode() in environment:
            return int(entry.name)
    raise AssertionError(f"no process for rank {rank}")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the rank's process through /proc")
def test_a_dead_rank_ends_the_run_and_it_resumes(tiny_model_dir, data, isolated_home, capsys):
    adapter = isolated_home.adapters_dir / "fragile"
    process = spawn_lora_tui(
        _train("fragile", tiny_model_dir, data, "--ranks", "2", "--epochs", "20", "--save-every", "2"),
        isolated_home.data_dir.parent,
    )
    _wait_for_event(adapter / "events.jsonl", "checkpoint")
    os.kill(_rank_pid(1), signal.SIGKILL)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "A rank stopped before the run ended" in err and "resume the run to go on" in err
    assert read_events(adapter / "events.jsonl")[-1].type == "failed"
    checkpoints = sorted((adapter / "checkpoints").glob("step-*"))
    assert checkpoints
    # Resumed by one process: the checkpoint does not care how many ranks wrote it.
    assert main(["train", "--name", "fragile", "--resume"]) == 0
    assert "finished (completed) at step 80" in capsys.readouterr().out


def test_ctrl_c_stops_every_rank_and_saves(tiny_model_dir, data, isolated_home, capsys):
    adapter = isolated_home.adapters_dir / "stopped"
    process = spawn_lora_tui(
        _train("stopped", tiny_model_dir, data, "--ranks", "2", "--epochs", "20"), isolated_home.data_dir.parent
    )
    _wait_for_event(adapter / "events.jsonl", "step")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "cancelled at step" in out
    assert json.loads((adapter / "lora_tui.json").read_text())["status"] == "cancelled"
    assert not (adapter / ".stop").exists()
    assert main(["train", "--name", "stopped", "--resume", "--ranks", "2"]) == 0
    assert "finished (completed) at step 80" in capsys.readouterr().out


def test_ranks_with_different_versions_are_refused(tmp_path):
    """Ranks.check_versions across two real ranks; each rank is told a different lora-tui version."""
    script = tmp_path / "versions.py"
    script.write_text(
        "from lora_tui.core.training.ranks import Ranks\n"
        "from lora_tui.core.errors import UserError\n"
        "ranks = Ranks()\n"
        "try:\n"
        "    ranks.check_versions({'mlx': '0.32.4', 'lora-tui': '0.1.0' if ranks.rank == 0 else '0.2.0'})\n"
        "except UserError as error:\n"
        "    print(f'rank {ranks.rank}: {error}', flush=True)\n"
    )
    launcher = [
        sys.executable,
        "-c",
        "from mlx._distributed_utils.launch import main; main()",
        "--hosts",
        "127.0.0.1",
        "-n",
        "2",
        "--backend",
        "ring",
        "--python",
        sys.executable,
        "--",
        str(script),
    ]
    output = subprocess.run(launcher, capture_output=True, text=True, timeout=120).stdout
    expected = "The hosts run different versions (rank 0: lora-tui 0.1.0; rank 1: lora-tui 0.2.0)."
    assert f"rank 0: {expected}" in output and f"rank 1: {expected}" in output, output


def test_local_ranks_share_the_cores_between_their_blas_threads(monkeypatch):
    from lora_tui.core.training.job import TrainingJob
    from lora_tui.core.training.launch import launch_command
    from lora_tui.core.training.params import build_params

    job = TrainingJob(Path("model"), Path("data.jsonl"), Path("adapter"), build_params())
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    command = launch_command(job, local_ranks=2)
    assert command[-1] == json.dumps(job.to_json())  # each rank rebuilds the same job
    assert "OPENBLAS_NUM_THREADS=4" in command and "OMP_NUM_THREADS=4" in command
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")  # the user's own limit stands
    assert not any(part.startswith("OPENBLAS_NUM_THREADS=") for part in launch_command(job, local_ranks=2))
    assert not any("NUM_THREADS" in part for part in launch_command(job, Path("hosts.json")))


def test_two_ranks_train_dpo_exactly_like_one_process(tiny_model_dir, isolated_home, tmp_path):
    pairs = [
        {"prompt": "Say " + "very " * i + f"{i}.", "chosen": f"{i}" * (1 + i % 3) + " Done!", "rejected": f"{i}"}
        for i in range(16)
    ]
    data = write_dataset(tmp_path / "pairs", pairs, pairs[:4])
    assert main(_train("one", tiny_model_dir, data, "--method", "dpo", "--epochs", "1")) == 0
    assert main(_train("two", tiny_model_dir, data, "--method", "dpo", "--epochs", "1", "--ranks", "2")) == 0
    events = {name: read_events(isolated_home.adapters_dir / name / "events.jsonl") for name in ("one", "two")}
    for field in ("train_loss", "reward_margin", "reward_accuracy"):
        one, two = ([getattr(e, field) for e in events[name] if e.type == "step"] for name in ("one", "two"))
        np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-6)
    valid = {name: [e.reward_margin for e in events[name] if e.type == "validation"] for name in events}
    np.testing.assert_allclose(valid["two"], valid["one"], rtol=1e-4, atol=1e-6)


def test_two_ranks_train_grpo_each_on_its_share_of_the_prompts(tiny_model_dir, isolated_home, tmp_path):
    rows = [{"prompt": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(10)]
    data = write_dataset(tmp_path / "prompts", rows, rows[:4])
    grpo = ["--method", "grpo", "--reward", "number", "--reward", "length:4", "--completion-length", "6"]
    assert main(_train("rl", tiny_model_dir, data, *grpo, "--epochs", "1", "--ranks", "2")) == 0
    events = read_events(isolated_home.adapters_dir / "rl" / "events.jsonl")
    steps = [e for e in events if e.type == "step"]
    assert [e.step for e in steps] == [1, 2] and all(e.reward is not None and e.kl >= 0 for e in steps)
    assert events[-1].type == "finished" and (isolated_home.adapters_dir / "rl" / "adapters.safetensors").is_file()
