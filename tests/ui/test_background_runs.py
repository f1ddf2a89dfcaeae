"""Runs outlive the app: quit mid-run and leave it running, the run finishes in the background, and an app
started meanwhile finds it and follows it."""

import json
import shutil

import pytest
from textual.widgets import Input, RichLog, Select
from trainkit import arithmetic_rows, write_dataset
from uikit import settle, wait_until

from lora_tui.app import make_app
from lora_tui.core.training.background import runs_in_progress
from lora_tui.core.training.events import read_events
from lora_tui.screens.dialogs import QuitDialog


@pytest.fixture
def home(isolated_home, tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, isolated_home.models_dir / "tiny")
    # 1600 steps in all: still training in the background when the next app starts, even on a fast machine.
    write_dataset(tmp_path / "data", arithmetic_rows(64), arithmetic_rows(4, offset=100))
    return isolated_home


def _meta(home, name):
    path = home.adapters_dir / name / "lora_tui.json"
    return json.loads(path.read_text()) if path.is_file() else {}


async def test_a_run_left_running_at_quit_finishes_and_the_next_app_follows_it(home, tmp_path):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        form = app.screen
        form.query_one("#pick-model", Select).value = str(home.models_dir / "tiny")
        form.query_one("#pick-data", Input).value = str(tmp_path / "data")
        form.query_one("#pick-name", Input).value = "night"
        for key, value in {"epochs": "50", "batch_size": "2", "max_seq_length": "64", "save_every": "20"}.items():
            form.query_one(f"#param-{key}", Input).value = value
        await settle(pilot)
        await wait_until(lambda: form.dataset_problem() is None, "the dataset check", timeout=30)
        form.refresh_start()
        await pilot.press("ctrl+s")  # Start
        status = form.query_one("#form-status")
        await wait_until(
            lambda: any(e.type == "step" for e in app.run_events),
            f"the first steps ({[str(n.message) for n in app._notifications]}, {status.render()})",
            timeout=60,
        )
        await pilot.press("ctrl+q")
        await wait_until(lambda: isinstance(app.screen, QuitDialog), "the quit question")
        await pilot.click("#ok")  # Leave it running
        await wait_until(lambda: not app.is_running, "the app to quit", timeout=60)
    assert app.handed_off_log is not None
    stopped_at = _meta(home, "night")["steps"]
    background_log = app.handed_off_log

    second = make_app()
    async with second.run_test(size=(80, 24)) as pilot:
        await wait_until(lambda: runs_in_progress(home.adapters_dir), "the background run to hold its adapter", 60)
        second.follow_background_run()
        await pilot.press("3")
        await settle(pilot)
        log = second.screen.query_one(RichLog)
        await wait_until(
            lambda: _meta(home, "night").get("status") == "finished", f"the run to finish ({background_log})", 240
        )
        await wait_until(lambda: any("finished" in line.text for line in log.lines), "the followed end", 30)
    events = read_events(home.adapters_dir / "night" / "events.jsonl")
    resumed = [e for e in events if e.type == "started" and e.resumed_from_step]
    assert resumed and resumed[0].resumed_from_step == stopped_at > 0
    assert _meta(home, "night")["steps"] == events[0].total_steps == 1600
