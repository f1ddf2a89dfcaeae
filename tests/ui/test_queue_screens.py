"""The queue in the app: Train's Queue adds a run or its sweep; the Dashboard lists, reorders, removes and runs
the queue, and follows each run as the runner reaches it."""

import shutil

import pytest
from textual.widgets import Button, Input, OptionList, RichLog, Static
from trainkit import arithmetic_rows, write_dataset
from uikit import settle, wait_until

from lora_tui.app import make_app
from lora_tui.core.training.queue import RunQueue


@pytest.fixture
def home(isolated_home, tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, isolated_home.models_dir / "tiny")
    write_dataset(tmp_path / "data", arithmetic_rows(8), arithmetic_rows(4, offset=50))
    return isolated_home


async def _fill_form(app, pilot, data, name, **params):
    await pilot.press("2")
    await settle(pilot)
    screen = app.screen
    screen.query_one("#pick-model").value = str(app.locations.models_dir / "tiny")
    screen.query_one("#pick-data", Input).value = str(data)
    screen.query_one("#pick-name", Input).value = name
    for key, value in {"epochs": "1", "batch_size": "4", "max_seq_length": "64", **params}.items():
        screen.query_one(f"#param-{key}", Input).value = value
    await settle(pilot)
    await wait_until(lambda: screen.dataset_problem() is None, "the dataset check", timeout=30)
    screen.refresh_start()


def _log(screen) -> str:
    return "".join(line.text for line in screen.query_one(RichLog).lines)


def _names(home):
    return [(job.name, job.status) for job in RunQueue(home.data_dir).jobs()]


async def test_a_swept_field_queues_its_grid_and_start_waits_for_the_queue(home, tmp_path):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _fill_form(app, pilot, tmp_path / "data", "tone", rank="4,8")
        screen = app.screen
        assert screen.query_one("#start", Button).disabled and not screen.query_one("#queue-run", Button).disabled
        assert not screen.query_one("#field-rank").has_class("-invalid")
        await pilot.click("#queue-run")
        await wait_until(lambda: len(_names(home)) == 2, "the sweep to be queued", timeout=30)
        assert _names(home) == [("tone-r4", "pending"), ("tone-r8", "pending")]
        screen.query_one("#param-rank", Input).value = "4,999"
        await pilot.pause()
        assert screen.query_one("#field-rank").has_class("-invalid")
        screen.query_one("#param-rank", Input).value = "8"
        screen.query_one("#param-columns", Input).value = "messages=messages,system=sys"  # its commas: no sweep
        await pilot.pause()
        assert not screen.query_one("#field-columns").swept()
        assert not any(field.swept() for field in screen.fields())


async def test_the_dashboard_reorders_removes_and_runs_the_queue(home, tmp_path):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        for name in ("one", "two", "three"):
            await _fill_form(app, pilot, tmp_path / "data", name)
            await pilot.click("#queue-run")
            await wait_until(lambda name=name: (name, "pending") in _names(home), f"{name} to be queued", timeout=30)
        await pilot.press("3")
        await settle(pilot)
        dashboard = app.screen
        await wait_until(lambda: dashboard.query_one("#queue-list", OptionList).option_count == 3, "the queue list")
        listing = dashboard.query_one("#queue-list", OptionList)
        listing.focus()
        listing.highlighted = 2
        await pilot.press("minus")  # "three" one place earlier
        await pilot.pause()
        assert [name for name, _ in _names(home)] == ["one", "three", "two"]
        listing.highlighted = 0
        await pilot.press("delete")
        await pilot.pause()
        assert [name for name, _ in _names(home)] == ["three", "two"]
        await pilot.press("u")
        await wait_until(lambda: all(s == "finished" for _, s in _names(home)), "the queue to run", timeout=180)
        # The dashboard followed the runs as the runner reached them: the last one's end is in its log.
        await wait_until(lambda: "adapters/two" in _log(dashboard), "the followed run", timeout=30)
        assert (home.adapters_dir / "three" / "adapters.safetensors").is_file()
        title = dashboard.query_one("#queue-title", Static)
        await wait_until(lambda: "queue: 0 pending; done" in str(title.render()), "the runner to end", timeout=30)


async def test_the_adapters_screen_compares_a_whole_sweep_best_first(home, tmp_path, tiny_model_dir):
    from lora_tui.cli import main
    from lora_tui.screens.compare import CompareScreen

    args = ["train", "--model", str(tiny_model_dir), "--data", str(tmp_path / "data"), "--name", "tone"]
    assert main([*args, "--epochs", "1", "--max-seq-length", "64", "--sweep", "learning-rate=1e-4,1e-2"]) == 0
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        app.screen.select_adapter("tone-lr1e-4")
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        assert [a.name for a in app.screen.adapters] == ["tone-lr1e-2", "tone-lr1e-4"]  # the lower val loss first
        assert "Sweep tone, best first" in str(app.screen.query_one("#compare-title").render())
