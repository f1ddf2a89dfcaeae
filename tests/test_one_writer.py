"""One writer per adapter, and shared files that stay whole, tried with real processes."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from tinymodels import write_gguf
from trainkit import arithmetic_rows, read_until, spawn_lora_tui, write_dataset

from lora_tui.cli import main
from lora_tui.core.adapters.lock import adapter_lock, holder
from lora_tui.core.models.store import load_model
from lora_tui.core.training.job import TrainingJob
from lora_tui.core.training.loop import run_training
from lora_tui.core.training.params import build_params
from lora_tui.settings import Settings


def _events(adapter_dir) -> list[dict]:
    return [json.loads(line) for line in (adapter_dir / "events.jsonl").read_text().splitlines()]


@pytest.fixture
def long_run(tiny_model_dir, tmp_path, isolated_home):
    """`lora-tui train --name dup` in its own process, running long enough to be in the way; killed at the end."""
    data = write_dataset(tmp_path / "data", arithmetic_rows(200))
    args = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--name", "dup", "--epochs", "50"]
    args += ["--batch-size", "4", "--max-seq-length", "64", "--save-every", "5"]
    process = spawn_lora_tui(args, isolated_home.data_dir.parent)
    read_until(process, "checkpoint ")
    yield process, args
    if process.poll() is None:
        process.kill()
    process.communicate()


def test_a_second_run_of_the_same_name_is_refused_naming_the_first(long_run, isolated_home, capsys):
    first, args = long_run
    second = subprocess.run(
        [sys.executable, "-m", "lora_tui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LORA_TUI_HOME": str(isolated_home.data_dir.parent)},
    )
    assert second.returncode == 1
    assert f"The adapter 'dup' is being trained by process {first.pid} on " in second.stderr
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    adapter = isolated_home.adapters_dir / "dup"
    assert [e["type"] for e in _events(adapter)].count("started") == 1  # the first run's events only


def test_the_loop_itself_refuses_a_held_adapter_and_writes_nothing(long_run, tiny_model_dir, tmp_path, isolated_home):
    adapter = isolated_home.adapters_dir / "dup"
    lines_before = (adapter / "events.jsonl").read_text().count("\n")
    seen = []
    job = TrainingJob(tiny_model_dir, tmp_path / "data", adapter, build_params({"epochs": 1}))
    outcome = run_training(job, seen.append)
    assert outcome.type == "failed" and "is being trained by process" in outcome.reason
    assert seen == [outcome]  # the caller hears of it ...
    time.sleep(0.5)  # ... and the running job's log has only its own lines (it keeps appending steps)
    assert all(e["type"] != "failed" for e in _events(adapter))
    assert (adapter / "events.jsonl").read_text().count("\n") >= lines_before


def test_changes_to_a_training_adapter_are_refused_reading_is_not(long_run, isolated_home, capsys):
    first, _ = long_run
    for command in (
        ["adapters", "delete", "dup", "--yes"],
        ["adapters", "rename", "dup", "other"],
        ["adapters", "promote", "dup", "step-0000005"],
        ["train", "--name", "dup", "--resume"],
    ):
        capsys.readouterr()
        assert main(command) == 1, command
        assert f"is being trained by process {first.pid}" in capsys.readouterr().err, command
    assert any((isolated_home.adapters_dir / "dup" / "checkpoints").iterdir())  # all still there
    capsys.readouterr()
    assert main(["adapters", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["name"], a["status"], a["rank"]) for a in listed] == [("dup", "training", 8)]


def test_sigkill_leaves_no_stale_lock(long_run, isolated_home, capsys):
    first, _ = long_run
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert holder(isolated_home.adapters_dir, "dup") is None
    resumed = spawn_lora_tui(["train", "--name", "dup", "--resume", "--epochs", "1"], isolated_home.data_dir.parent)
    read_until(resumed, "step ")  # it trains at once
    resumed.send_signal(signal.SIGINT)  # stop and save
    assert resumed.wait(timeout=120) == 130


def test_in_process_holder_is_named_and_released(tmp_path):
    with adapter_lock(tmp_path, "mine") as me:
        assert holder(tmp_path, "mine") == me and me.pid == os.getpid()
    assert holder(tmp_path, "mine") is None


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from lora_tui.core.data.recent import RecentFiles
    from lora_tui.core.locations import Locations
    from lora_tui.settings import Settings

    key, count, own_file = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    locations = Locations.from_environment()
    for number in range(count):
        Settings.update(locations, **{key: f"{key}-{number}"})
        RecentFiles(locations.recent_datasets_file).add(own_file)
""")


def test_two_processes_updating_settings_leave_a_whole_file(tmp_path, isolated_home):
    env = {**os.environ, "LORA_TUI_HOME": str(isolated_home.data_dir.parent)}
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for file in files:
        file.write_text("{}\n")
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, key, "150", str(file)], env=env)
        for key, file in zip(("theme", "datasets_root"), files, strict=True)
    ]
    while any(writer.poll() is None for writer in writers):
        Settings.load(isolated_home)  # never half a file, never broken TOML
    assert [writer.returncode for writer in writers] == [0, 0]
    final = Settings.load(isolated_home)
    assert (final.theme, final.datasets_root) == ("theme-149", "datasets_root-149")  # neither lost the other's
    recent = json.loads(isolated_home.recent_datasets_file.read_text())
    assert sorted(recent) == sorted(str(file.resolve()) for file in files)


def test_two_imports_of_one_name_leave_one_whole_model(tiny_model_dir, tmp_path, isolated_home):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "tiny.gguf", "Q8_0")
    twin = ["models", "import-gguf", str(gguf_file), "--name", "twin"]
    imports = [spawn_lora_tui(twin, isolated_home.data_dir.parent) for _ in range(2)]
    results = [(process.wait(timeout=120), process.stderr.read()) for process in imports]
    assert sorted(code for code, _ in results) == [0, 1]
    assert any("A model named 'twin' already exists" in err for code, err in results if code == 1)
    model, _ = load_model(isolated_home.models_dir / "twin")
    assert len(model.layers) > 0
    assert [p.name for p in isolated_home.models_dir.iterdir() if not p.name.startswith(".")] == ["twin"]
