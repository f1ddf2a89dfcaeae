"""Will it fit, on the real models: the peak predicted before loading is within 20% of the peak the trial
measures on the demo model and Gemma 3 270M, and a run far over this machine's memory is refused before
anything is written, with the changes that make it fit."""

import json

import pytest

from lora_tui.cli import main
from lora_tui.core.training.estimate import estimate_run
from lora_tui.core.training.job import TrainingJob
from lora_tui.core.training.params import build_params

pytestmark = pytest.mark.e2e

WORDS = ["river", "stone", "cloud", "seven", "orange", "window", "music", "paper"]


def _stories(path, count: int, long_words: int):
    """Conversations with short answers, and every fourth one long."""
    lines = []
    for index in range(count):
        words = long_words if index % 4 == 0 else 20
        answer = " ".join(WORDS[(index + i) % len(WORDS)] for i in range(words))
        messages = [{"role": "user", "content": f"Story {index}."}, {"role": "assistant", "content": answer}]
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("model", "batch_size"), [("demo", 4), ("gemma", 2)])
def test_the_prediction_is_within_a_fifth_of_the_measured_peak(
    model, batch_size, demo_model_dir, gemma_model_dir, tmp_path
):
    folder = demo_model_dir if model == "demo" else gemma_model_dir
    data = _stories(tmp_path / "stories.jsonl", 16, long_words=150)
    params = build_params({"batch_size": batch_size, "max_seq_length": 512, "epochs": 1})
    estimate = estimate_run(TrainingJob(folder, data, tmp_path / "trial", params))
    assert 0.8 <= estimate.predicted_peak_bytes / estimate.peak_memory_bytes <= 1.2, estimate.describe()


def test_a_run_far_over_memory_is_refused_before_anything_is_written(demo_model_dir, isolated_home, tmp_path, capsys):
    data = _stories(tmp_path / "long.jsonl", 32, long_words=3000)
    args = ["train", "--model", str(demo_model_dir), "--data", str(data), "--name", "huge"]
    assert main([*args, "--batch-size", "32", "--max-seq-length", "4096"]) == 1
    said = capsys.readouterr().err
    assert "This run needs about " in said and " GB" in said and "It fits with " in said, said
    assert "--batch-size " in said and "--max-seq-length " in said and "Traceback" not in said
    assert not (isolated_home.adapters_dir / "huge").exists()
