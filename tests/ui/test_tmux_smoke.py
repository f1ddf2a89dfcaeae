"""Smoke test in a real terminal (tmux, TERM=screen-256color): every area, then quit."""

import shutil

import pytest

from tmuxdriver import TmuxApp

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make test installs it)")

AREAS = [("1", "Choose a dataset on the left"), ("3", "No run yet"), ("4", "Adapters screen is not built yet"),
         ("5", "Chat screen is not built yet"), ("2", "adapter name")]


def test_visits_every_area_and_quits_cleanly(tmp_path):
    app = TmuxApp(tmp_path)
    try:
        app.wait_for("Start training")
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
