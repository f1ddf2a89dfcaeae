"""Every assistant turn trains, on the real demo model (SmolLM2's ChatML template)."""

import json
import math

import pytest
from trainkit import train, write_dataset

from lora_tui.cli import main
from lora_tui.core.training.events import Finished, read_events

pytestmark = pytest.mark.e2e

CONVERSATION = [
    {"role": "system", "content": "You answer in one sentence."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "The capital of Italy is Rome."},
]


def test_show_mask_on_the_demo_model_trains_both_answers_with_their_end_of_turn(
    demo_model_dir, isolated_home, tmp_path, capsys
):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": CONVERSATION}) + "\n")
    assert main(["data", "check", str(path), "--model", str(demo_model_dir), "--show-mask", "1", "--json"]) == 0
    pieces = json.loads(capsys.readouterr().out)
    trained = "".join(p["token"] for p in pieces if p["trained"])
    assert trained == "The capital of France is Paris.<|im_end|>\nThe capital of Italy is Rome.<|im_end|>\n"
    assert "".join(p["token"] for p in pieces).startswith("<|im_start|>system\nYou answer in one sentence.")


def test_a_multi_turn_run_on_the_demo_model_trains(demo_model_dir, tmp_path):
    data = write_dataset(tmp_path / "data", [{"messages": CONVERSATION}] * 4)
    outcome = train(demo_model_dir, data, tmp_path / "adapter", epochs=1, batch_size=2, steps_per_eval=100)
    assert isinstance(outcome, Finished)
    steps = [e for e in read_events(tmp_path / "adapter" / "events.jsonl") if e.type == "step"]
    assert len(steps) == 2 and all(math.isfinite(s.train_loss) and s.trained_tokens > 0 for s in steps)
