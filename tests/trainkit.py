"""Small datasets and a helper to run training in tests."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lora_tui.core.training.job import TrainingJob
from lora_tui.core.training.loop import run_training
from lora_tui.core.training.params import build_params


def arithmetic_rows(count: int, offset: int = 0) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"It is {2 * i}."},
            ]
        }
        for i in range(offset, offset + count)
    ]


def write_dataset(folder: Path, train: list[dict], valid: list[dict] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    if valid:
        (folder / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in valid))
    return folder


def train(model_dir: Path, data: Path, adapter_dir: Path, listener=lambda e: None, stop=None, resume=False, **params):
    defaults = {"epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "max_seq_length": 128, "steps_per_eval": 4}
    job = TrainingJob(model_dir, data, adapter_dir, build_params({**defaults, **params}), resume=resume)
    return run_training(job, listener, stop)


def spawn_lora_tui(args: list[str], home: Path) -> subprocess.Popen:
    """`lora-tui ARGS` in its own process with LORA_TUI_HOME=home, its output in pipes, unbuffered."""
    env = {**os.environ, "LORA_TUI_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "lora_tui", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def read_until(process: subprocess.Popen, prefix: str, timeout: float = 120) -> list[str]:
    """The process's output lines up to the first that starts with `prefix`; fails naming the last ones seen."""
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no line starting with {prefix!r} from {process.args}: {lines[-5:]}")


def assert_same_adapter(a: Path, b: Path) -> None:
    """The two adapter folders hold the same weights (to float tolerance)."""
    import mlx.core as mx
    import numpy as np

    first, second = mx.load(str(a / "adapters.safetensors")), mx.load(str(b / "adapters.safetensors"))
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_allclose(np.array(first[key]), np.array(second[key]), atol=1e-5, rtol=1e-4)


def stopping_at_step(step: int):
    """(listener, stop event): the stop is set when the run reports `step`, as Ctrl-C or the app's cancel would."""
    import threading

    stop = threading.Event()

    def listener(event) -> None:
        if event.type == "step" and event.step == step:
            stop.set()

    return listener, stop
