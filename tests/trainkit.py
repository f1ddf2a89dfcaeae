"""Small datasets and a helper to run training in tests."""

import json
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
