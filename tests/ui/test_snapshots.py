"""Snapshots of each built screen at 80x24 and 120x40 (pytest-textual-snapshot).

Update after an intended change with `pytest tests/ui/test_snapshots.py --snapshot-update`
and look at the report before committing.
"""

import json
import math
import shutil
from pathlib import Path

import pytest
from textual.widgets import Input
from uikit import still, wait_until

from lora_tui.app import make_app
from lora_tui.settings import Settings
from lora_tui.widgets.model_picker import HUB_CHOICE

GOOD_DATA = Path(__file__).parent.parent / "data" / "good"
# Paths show on the Adapters screen, so its snapshot needs a home at the same place on every machine.
FIXED_HOME = Path("/tmp/lora-tui-snapshot-home")

SIZES = [(80, 24), (120, 40)]
AREA_KEYS = {"datasets": 1, "train": 2, "dashboard": 3, "adapters": 4, "chat": 5}


@pytest.fixture
def fixed_home(monkeypatch):
    from lora_tui.core.locations import Locations

    shutil.rmtree(FIXED_HOME, ignore_errors=True)
    monkeypatch.setenv("LORA_TUI_HOME", str(FIXED_HOME))
    yield Locations.from_environment()
    shutil.rmtree(FIXED_HOME, ignore_errors=True)


def _write_adapter(folder: Path) -> None:
    """An adapter folder with fixed metadata and curves (its weights are zeros)."""
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    save_file(
        {"model.layers.0.self_attn.q_proj.lora_a": np.zeros((64, 8), np.float32)}, str(folder / "adapters.safetensors")
    )
    (folder / "adapter_config.json").write_text(
        json.dumps(
            {"fine_tune_type": "lora", "num_layers": 1, "lora_parameters": {"rank": 8, "scale": 2.0, "dropout": 0.0}}
        )
    )
    (folder / "lora_tui.json").write_text(
        json.dumps(
            {
                "name": folder.name,
                "base_model": "SmolLM2-135M-Instruct",
                "base_model_path": "/models/SmolLM2-135M-Instruct",
                "dataset": "/data/notes/train.jsonl",
                "created": "2026-11-20T10:00:00",
                "final_train_loss": 0.8123,
                "best_val_loss": 0.9431,
                "steps": 40,
                "epochs": 2,
                "parameters": {"rank": 8, "learning_rate": 0.0001},
                "status": "finished",
            }
        )
    )
    events = [
        {
            "type": "step",
            "step": s,
            "epoch": s / 20,
            "train_loss": 2.5 * math.exp(-s / 15) + 0.8,
            "learning_rate": 1e-4,
            "tokens_per_second": 100.0,
            "iterations_per_second": 1.0,
            "trained_tokens": s * 100,
            "peak_memory_bytes": 1,
            "eta_seconds": 0.0,
            "time": 0.0,
        }
        for s in range(1, 41)
    ]
    events += [
        {"type": "validation", "step": s, "val_loss": 2.5 * math.exp(-s / 15) + 0.9, "time": 0.0}
        for s in (10, 20, 30, 40)
    ]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    for step, loss in ((20, 1.2), (40, 0.9431)):
        checkpoint = folder / "checkpoints" / f"step-{step:07d}"
        checkpoint.mkdir(parents=True)
        shutil.copy(folder / "adapters.safetensors", checkpoint / "adapters.safetensors")
        (checkpoint / "progress.json").write_text(json.dumps({"step": step, "val_loss": loss}))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("area", ["datasets", "train", "dashboard", "adapters", "chat"])
def test_screen(snap_compare, fixed_home, area, size):
    Settings(datasets_root=str(GOOD_DATA)).save(fixed_home)
    _write_adapter(fixed_home.adapters_dir / "style-notes")

    async def run_before(pilot):
        await pilot.press(str(AREA_KEYS[area]))
        await still(pilot)
        if area == "datasets":
            await _open_dataset(pilot, GOOD_DATA / "chat.jsonl")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


# Every dialog at both sizes: (area, key that opens it); the buttons and the footer's keys must show.
DIALOGS = {
    "export": ("adapters", "e"),
    "rename": ("adapters", "n"),
    "fuse": ("adapters", "f"),
    "delete": ("adapters", "d"),
    "split": ("datasets", "s"),
    "redact": ("datasets", "r"),
    "docs": ("datasets", "d"),
    "help": ("adapters", "question_mark"),
    "save-example": ("chat", "ctrl+s"),
    "pairs-file": ("chat", "ctrl+l"),
    "fetch-model": ("train", None),
    "clear-chat": ("chat", "ctrl+b"),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dialog", list(DIALOGS))
def test_dialog(snap_compare, fixed_home, dialog, size):
    Settings(datasets_root=str(GOOD_DATA)).save(fixed_home)
    _write_adapter(fixed_home.adapters_dir / "style-notes")
    area, key = DIALOGS[dialog]

    async def run_before(pilot):
        await pilot.press(str(AREA_KEYS[area]))
        await still(pilot)
        if area == "datasets":
            await _open_dataset(pilot, GOOD_DATA / "chat.jsonl")
        if area == "chat":  # the chat dialogs need an exchange (and Ctrl+L two answers): one made up
            await _an_exchange(pilot)
        if key is None:  # the model picker's hub download
            pilot.app.screen.query_one("#pick-model").value = HUB_CHOICE
        else:
            await pilot.press(key)
        await still(pilot)
        if dialog == "redact":  # its preview runs spaCy in a worker of the dialog's
            preview = pilot.app.screen.query_one("#redact-preview")
            await wait_until(lambda: "Finding" not in str(preview.render()), "the redaction preview")
        for box in pilot.app.screen.query(Input):  # the checkout's path differs between machines
            box.value = box.value.replace(str(GOOD_DATA), "/data")
            box.cursor_blink = False
        await still(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_fit_dialog(snap_compare, fixed_home, size):
    """A run that would not fit: the figures, and a button (and number key) per change that fits."""
    from lora_tui.core.training.fit import Budget, DoesNotFit, Fix, LongestBatch, MemoryEstimate
    from lora_tui.screens.dialogs import FitDialog

    estimate = MemoryEstimate(
        538_000_000, 7_900_000, 24_750_000_000, 7_650_000_000, 750_000_000, LongestBatch(32, 3040, 3040), "float32"
    )
    fixes = [
        Fix({"batch_size": 2, "grad_accumulation_steps": 16}, 20_800_000_000),
        Fix({"max_seq_length": 384}, 21_500_000_000, "cuts 8 records to 384 tokens"),
    ]
    refusal = DoesNotFit(estimate, Budget(23_300_000_000, "available memory"), fixes, None)

    async def run_before(pilot):
        await pilot.press(str(AREA_KEYS["train"]))
        await still(pilot)
        pilot.app.push_screen(FitDialog(str(refusal), fixes))
        await still(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


def test_chat_compare_snapshot(snap_compare, fixed_home):
    async def run_before(pilot):
        await pilot.press("5")
        await still(pilot)
        await pilot.press("ctrl+b")
        await still(pilot)

    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=run_before)


def test_invalid_field_snapshot(snap_compare, isolated_home):
    async def run_before(pilot):
        await pilot.press("2")
        await still(pilot)
        pilot.app.screen.query_one("#param-rank", Input).value = "300"
        await still(pilot)

    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=run_before)


async def _an_exchange(pilot):
    from lora_tui.core.inference.generate import Turn

    screen = pilot.app.screen
    screen.sides["a"].history[:] = [Turn("user", "Hi?"), Turn("assistant", "Hello.")]
    screen.sides["b"].history[:] = [Turn("user", "Hi?"), Turn("assistant", "Hey.")]
    screen.second_try = True
    pilot.app.settings.datasets_root = "/data"
    screen.set_focus(None)


async def _open_dataset(pilot, path):
    box = pilot.app.screen.query_one("#dataset-path", Input)
    box.value = str(path)
    box.focus()
    await pilot.press("enter")
    await still(pilot)
    box.value = ""  # the absolute path differs between checkouts
    pilot.app.screen.query_one("#dataset-tree").focus()
    await still(pilot)
