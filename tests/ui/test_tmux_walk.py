"""The app at 80x24 in a real terminal, keys only: every area's help, the Export dialog's buttons,
and a missing dataset reported on the Train form before Ctrl+S."""

import shutil
import time

import pytest
from tmuxdriver import TmuxApp

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make test installs it)")

PURPOSES = [("1", "Find a dataset"), ("2", "Set up a run"), ("3", "Watch the run"), ("4", "Every adapter")]


@pytest.fixture
def walk(tmp_path, tiny_model_dir, tiny_adapter):
    shutil.copytree(tiny_model_dir, tmp_path / "data" / "models" / "tiny")
    shutil.copytree(tiny_adapter, tmp_path / "data" / "adapters" / "arith")
    app = TmuxApp(tmp_path, width=80, height=24)
    app.wait_for("12345 Areas")
    yield app
    app.close()


def test_question_mark_explains_every_area(walk):
    for key, purpose in PURPOSES:
        walk.press(key)
        walk.press("?")
        walk.wait_for(purpose, timeout=10)
        walk.press("Escape")
        walk.wait_for("? Help", timeout=10)
    walk.press("5")
    walk.wait_for("esc Stop", timeout=10)
    walk.press("Escape")  # out of the message box first: there ? is a question mark
    walk.wait_for("? Help", timeout=10)
    walk.press("?")
    walk.wait_for("Talk to the base", timeout=10)


def test_export_shows_its_buttons_and_keys_at_80x24(walk):
    walk.press("4")
    walk.wait_for("arith", timeout=10)
    walk.press("e")
    walk.wait_for("Export arith", timeout=10)
    walk.wait_for("esc Cancel", timeout=10)  # the dialog's own keys, in its footer
    lines = walk.screen().splitlines()
    buttons = next(i for i, line in enumerate(lines) if "Export" in line and "Cancel" in line and "esc" not in line)
    footer = next(i for i, line in enumerate(lines) if line.startswith("esc Cancel"))
    assert buttons < footer == 23


def test_a_missing_dataset_shows_on_the_train_form_before_start(walk):
    walk.press("2")
    walk.wait_for("adapter name", timeout=10)
    walk.wait_for("tiny", timeout=10)  # the models are listed: the form is ready
    for _ in range(3):  # model, hub id, dataset
        walk.press("Tab")
        time.sleep(0.2)
    walk.press("-l", "/nowhere/train.jsonl")
    walk.wait_for("no such file", timeout=20)
    assert "Start training" in walk.screen()  # still on the form: nothing was started
