"""Smoke test in a real terminal (tmux, TERM=screen-256color): every area, then quit."""

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from tmuxdriver import TmuxApp

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make test installs it)")

AREAS = [
    ("1", "Choose a dataset on the left"),
    ("3", "No run yet"),
    ("4", "No adapters yet"),
    ("5", "message (enter sends"),
    ("Escape", "12345 Areas"),
    ("2", "adapter name"),
]


def test_visits_every_area_and_quits_cleanly(tmp_path):
    app = TmuxApp(tmp_path)
    try:
        app.wait_for("Choose a dataset on the left")  # a newcomer starts on Datasets
        shown = app.screen()
        for label in ("1 Datasets", "2 Train", "3 Dashboard", "4 Adapters", "5 Chat", "12345 Areas"):
            assert label in shown
        for key, text in AREAS:
            app.press(key)
            app.wait_for(text, timeout=10)
        app.press("C-q")
        assert app.wait_for_exit() == 0
    finally:
        app.close()


def test_a_terminal_that_goes_away_leaves_no_process_behind(tmp_path):
    """tmux kill-session (as a dropped SSH connection) hangs up on the app: it must end, not linger on the
    dead terminal holding its memory (it did, on the Train form, before the exit watchdog)."""
    app = TmuxApp(tmp_path)
    try:
        app.wait_for("Choose a dataset on the left")
        app.press("2")
        app.wait_for("adapter name", timeout=10)
        for _ in range(3):  # model, hub id, dataset
            app.press("Tab")
            time.sleep(0.2)
        app.press("-l", "/nowhere/train.jsonl")
        app.wait_for("/nowhere/train.jsonl", timeout=20)
        shell = subprocess.run(
            ["tmux", "list-panes", "-t", app.session, "-F", "#{pane_pid}"], capture_output=True, text=True
        ).stdout.split()[0]
        children = subprocess.run(["pgrep", "-P", shell], capture_output=True, text=True).stdout.split()
    finally:
        app.close()
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert children and not any(Path(f"/proc/{pid}").exists() for pid in children)


@pytest.mark.e2e
def test_chat_with_the_demo_model_in_a_real_terminal(tmp_path, demo_model_dir):
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    (models / demo_model_dir.name).symlink_to(demo_model_dir)
    app = TmuxApp(tmp_path)
    try:
        app.wait_for("Choose a dataset on the left")
        app.press("5")
        app.wait_for("esc Stop", timeout=10)  # the chat screen, its message box focused
        app.wait_for("SmolLM2-135M-Instruct", timeout=10)
        app.press("What is the capital of France?")
        app.wait_for("capital of France?")
        app.press("Enter")
        _wait_for_reply_text(app)  # sampled (temperature 0.3): the words vary; that they arrive is the point
        app.press("Escape")  # stop it: the stats line says how many tokens came
        app.wait_for("tok/s", timeout=30)
        generated = re.search(r"(\d+) tokens, first after (\d+) ms", app.screen())
        assert generated and int(generated.group(1)) > 0, app.screen()
        app.press("Tell me a long story.")
        app.wait_for("long story.")
        app.press("Enter")
        time.sleep(1.0)
        app.press("C-q")  # while it generates: the reply stops, its thread ends, then the app
        assert app.wait_for_exit(timeout=60) == 0
    finally:
        app.close()


def _wait_for_reply_text(app, timeout=60):
    """Until the line under the reply's label (the model's name alone on a line) has text."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        # The conversation only: left of the sampling panel, which is open on terminals 100 columns wide.
        lines = [line.split("│")[0].strip() for line in app.screen().splitlines()]
        for index, line in enumerate(lines[:-1]):
            if line == "SmolLM2-135M-Instruct" and lines[index + 1]:
                return
        time.sleep(0.05)
    raise AssertionError(f"no reply text; screen:\n{app.screen()}")
