"""Smoke test in a real terminal (tmux, TERM=screen-256color): every area, then quit."""

import shutil

import pytest

from tmuxdriver import TmuxApp

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make test installs it)")

AREAS = [("1", "Datasets screen is not built yet"), ("3", "No run yet"), ("4", "Adapters screen is not built yet"),
         ("5", "Chat screen is not built yet"), ("2", "adapter name")]


def test_visits_every_area_and_quits_cleanly(tmp_path):
    app = TmuxApp(tmp_path)
    try:
        app.wait_for("Start training")
        footer = app.screen()
        for label in ("Datasets", "Train", "Dashboard", "Adapters", "Chat"):
            assert label in footer
        for key, text in AREAS:
            app.press(key)
            app.wait_for(text, timeout=10)
        app.press("C-q")
        assert app.wait_for_exit() == 0
    finally:
        app.close()
