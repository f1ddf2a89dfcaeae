"""MLX's wired and cache limits for a run, and the one-time warning when the system starts swapping."""

import json

import pytest
from trainkit import arithmetic_rows, train, write_dataset
from uikit import settle

from lora_tui.cli import main
from lora_tui.core.training import memory
from lora_tui.core.training.events import Notice, Started, describe, read_events
from lora_tui.core.training.memory import MemoryLimits, SwapWatch, apply_memory_limits, swap_used_bytes

MB = 10**6  # human_bytes counts in decimal units


def test_the_swap_watch_warns_once_with_the_figure():
    readings = iter([100 * MB, 200 * MB, 700 * MB, 900 * MB])
    watch = SwapWatch(read=lambda: next(readings), threshold=512 * MB)
    assert watch.check() is None  # up 100 MB: not yet
    warning = watch.check()
    assert warning.startswith("The system is swapping: 700.0 MB of swap in use, 600.0 MB more than")
    assert "smaller batch size" in warning
    assert watch.check() is None  # once


def test_swap_that_cannot_be_read_warns_of_nothing():
    assert SwapWatch(read=lambda: None).check() is None


def test_this_machines_swap_reads_as_a_number():
    used = swap_used_bytes()
    assert used is None or used >= 0


def test_limits_apply_only_where_the_backend_has_them(monkeypatch):
    import mlx.core as mx

    if mx.metal.is_available():
        limits = apply_memory_limits(None, 2.0)
        assert limits.wired_bytes == memory.recommended_working_set() and limits.cache_bytes == 2 * 1024**3
    else:
        assert apply_memory_limits(8.0, 1.0) == MemoryLimits(None, None)  # Linux CPU: nothing to wire


def test_started_says_the_limits_and_a_notice_is_a_warning_line():
    started = Started({}, 1, 10, 5, 5, 4, 1, memory_limits=MemoryLimits(16 * 10**9, 0).to_json())
    assert "memory limits: wired 16.0 GB" in describe(started)
    assert describe(Notice(7, "The system is swapping: ...")) == "warning at step 7: The system is swapping: ..."


@pytest.mark.parametrize("flag", ["--wired-limit", "--cache-limit"])
def test_the_flags_are_checked_against_their_range(flag, tiny_model_dir, isolated_home, tmp_path, capsys):
    data = write_dataset(tmp_path / "data", arithmetic_rows(8))
    args = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--name", "x", flag, "-1"]
    assert main(args) == 1
    assert "limit must be" in capsys.readouterr().err


def test_a_run_that_starts_swapping_says_so_in_its_events(tiny_model_dir, tmp_path, monkeypatch):
    readings = iter([0] + [1000 * MB] * 1000)
    monkeypatch.setattr(memory, "swap_used_bytes", lambda: next(readings))
    monkeypatch.setattr(memory.SwapWatch.__init__, "__defaults__", (memory.swap_used_bytes, 512 * MB))
    data = write_dataset(tmp_path / "data", arithmetic_rows(8))
    train(tiny_model_dir, data, tmp_path / "adapter", epochs=1, cache_limit=0.5)
    events = list(read_events(tmp_path / "adapter" / "events.jsonl"))
    [notice] = [e for e in events if e.type == "notice"]
    assert notice.step == 1 and "1.0 GB of swap in use" in notice.message
    assert json.loads((tmp_path / "adapter" / "events.jsonl").read_text().splitlines()[0])["memory_limits"]


async def test_the_dashboard_shows_the_limits_and_warns_of_swapping(isolated_home):
    from lora_tui.app import make_app
    from lora_tui.core.training.events import Step
    from lora_tui.messages import TrainingEventPosted

    started = Started({}, 1, 10, 10, 10, 8, 0, memory_limits=MemoryLimits(21 * 10**9, None).to_json())
    step = Step(1, 0.1, 2.5, 1e-4, 100.0, 1.0, 64, 3 * 10**9, 9.0)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        for event in (started, step, Notice(1, "The system is swapping: 1.0 GB of swap in use.")):
            app.post_message(TrainingEventPosted(event, live=False))
        await settle(pilot)
        assert "limits wired 21.0 GB" in str(app.screen.query_one("#run-numbers").render())
        log = "".join(str(line.text) for line in app.screen.query_one("#run-log").lines)
        assert "warning at step 1: The system is swapping" in log
        assert any("The system is swapping" in str(n.message) for n in app._notifications)
