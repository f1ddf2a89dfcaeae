"""Pilot tests: the shell, the Train form, and a real run watched on the dashboard."""

import asyncio
import json
import shutil

import pytest
from textual.widgets import Button, Input, ProgressBar, RichLog, Select, Static
from trainkit import arithmetic_rows, write_dataset
from uikit import settle, wait_until

from lora_tui.app import make_app
from lora_tui.core.adapters.lock import adapter_lock
from lora_tui.settings import Settings
from lora_tui.themes import load_themes, theme_from_file
from lora_tui.widgets.loss_chart import LossChart


@pytest.fixture
def home(isolated_home, tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, isolated_home.models_dir / "tiny")
    write_dataset(tmp_path / "data", arithmetic_rows(16), arithmetic_rows(4, offset=50))
    return isolated_home


async def _settle(app, pilot):
    await settle(pilot)


async def _fill_form(app, pilot, data, name="from-form", **params):
    await _settle(app, pilot)
    await pilot.press("2")
    await _settle(app, pilot)
    screen = app.screen
    select = screen.query_one("#pick-model", Select)
    select.value = str(app.locations.models_dir / "tiny")
    screen.query_one("#pick-data", Input).value = str(data)
    screen.query_one("#pick-name", Input).value = name
    for key, value in {
        "epochs": "2",
        "batch_size": "4",
        "max_seq_length": "128",
        "learning_rate": "0.001",
        **params,
    }.items():
        screen.query_one(f"#param-{key}", Input).value = value
    await pilot.pause()


def _log_text(screen) -> str:
    """The dashboard log as one string (long lines are wrapped on screen)."""
    return "".join(line.text for line in screen.query_one(RichLog).lines)


async def _wait_for_run(app, pilot, timeout=120):
    await wait_until(lambda: not app.training_running, "the run to end", timeout=timeout, interval=0.1)
    await _settle(app, pilot)


async def test_areas_switch_with_number_keys(home):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.current_mode == "datasets"  # a newcomer starts where the demo dataset is offered
        for key, area in zip("23451", ("train", "dashboard", "adapters", "chat", "datasets"), strict=True):
            await pilot.press(key)
            assert app.current_mode == area
            if area == "chat":  # the message box has the keys; esc leaves it
                await pilot.press("escape")


async def test_someone_who_has_trained_starts_on_train(home, tiny_adapter):
    shutil.copytree(tiny_adapter, home.adapters_dir / "arith")
    app = make_app()
    async with app.run_test(size=(80, 24)):
        assert app.current_mode == "train"


async def test_footers_are_rebuilt_only_when_their_keys_change_and_do_not_pile_up(home):
    import gc

    from textual.widgets._footer import FooterKey

    from lora_tui.widgets.app_footer import AppFooter

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        keys_before = list(app.screen.query(FooterKey))
        for _ in range(10):
            await pilot.press("2", "3")
        assert list(app.screen.query(FooterKey)) == keys_before  # the same widgets: not rebuilt
        footer = app.screen.query_one(AppFooter)
        for _ in range(5):  # as if the keys had changed each time: rebuilt
            footer._shown = None
            app.screen.refresh_bindings()
            await pilot.pause()
        assert not set(app.screen.query(FooterKey)) & set(keys_before)
        del keys_before
        gc.collect()
        alive = [key for key in gc.get_objects() if isinstance(key, FooterKey)]
        assert all(key.is_attached for key in alive), "FooterKeys of earlier footers stayed alive"


async def test_invalid_field_is_marked_and_start_stays_disabled(home, tmp_path):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _fill_form(app, pilot, tmp_path / "data")
        start = app.screen.query_one("#start", Button)
        assert not start.disabled
        app.screen.query_one("#param-rank", Input).value = "300"
        await pilot.pause()
        field = app.screen.query_one("#field-rank")
        assert field.has_class("-invalid") and "between 4 and 128" in field.error
        assert start.disabled
        app.screen.query_one("#param-rank", Input).value = "16"
        await pilot.pause()
        assert not start.disabled and not field.has_class("-invalid")


async def test_adapter_name_is_checked_as_typed(home, tmp_path):
    (home.adapters_dir / "taken").mkdir(parents=True)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _fill_form(app, pilot, tmp_path / "data")
        start = app.screen.query_one("#start", Button)
        status = app.screen.query_one("#form-status", Static)
        for bad, problem in (("a/b", "adapter name"), ("taken", "an adapter named 'taken' exists")):
            app.screen.query_one("#pick-name", Input).value = bad
            await pilot.pause()
            assert start.disabled and problem in str(status.render())
        app.screen.query_one("#pick-name", Input).value = "fresh"
        await pilot.pause()
        assert not start.disabled


async def test_real_training_from_the_form_to_the_dashboard(home, tmp_path):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _fill_form(app, pilot, tmp_path / "data")
        await pilot.press("ctrl+s")
        await _wait_for_run(app, pilot)
        assert app.current_mode == "dashboard"
        dashboard = app.screen
        assert len(dashboard.query_one(LossChart).train) == 8  # 16 records / 4 x 2 epochs
        assert len(dashboard.query_one(LossChart).valid) >= 1
        assert dashboard.query_one(ProgressBar).progress == 8
        assert "finished (completed) at step 8" in _log_text(dashboard)
        numbers = str(dashboard.query_one("#run-numbers").render())
        assert "step 8/8" in numbers and "\npredicted " in numbers  # fit.py's peak, under the measured one
        assert "predicted peak memory: " in _log_text(dashboard)
        await pilot.press("c")  # the finished adapter, in Chat
        await _settle(app, pilot)
        assert app.current_mode == "chat" and app.screen.query_one("#chat-model-a", Select).value == "lora:from-form"
        await pilot.press("escape", "3", "a")  # and in the adapter manager
        await _settle(app, pilot)
        assert app.current_mode == "adapters" and app.screen.selected_name() == "from-form"
    metadata = json.loads((home.adapters_dir / "from-form" / "lora_tui.json").read_text())
    assert metadata["steps"] == 8 and metadata["parameters"]["learning_rate"] == 0.001


@pytest.fixture
def slow_training(monkeypatch):
    """A tiny model trains faster than anyone can confirm a dialog: 50 ms more a step."""
    import time

    from lora_tui.core.training import loop as trainer

    after_step = trainer._Run.after_step

    def slow_after_step(self, *args, **kwargs):
        time.sleep(0.05)
        return after_step(self, *args, **kwargs)

    monkeypatch.setattr(trainer._Run, "after_step", slow_after_step)


async def _start_a_long_run(app, pilot, data, name: str) -> None:
    """Start 50 epochs from the form and wait for the first step on the dashboard."""
    await _fill_form(app, pilot, data, name=name, epochs="50")
    await pilot.press("ctrl+s")
    await wait_until(lambda: app.screen.query_one(LossChart).train, "the first step on the dashboard")


async def test_cancel_asks_then_saves(home, tmp_path, slow_training):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _start_a_long_run(app, pilot, tmp_path / "data", "long")
        await pilot.press("x")
        await pilot.pause()
        await pilot.click("#ok")
        await _wait_for_run(app, pilot)
        assert "cancelled at step" in _log_text(app.screen), _log_text(app.screen)[-400:]
    assert json.loads((home.adapters_dir / "long" / "lora_tui.json").read_text())["status"] == "cancelled"


async def test_data_errors_are_a_notice_and_nothing_starts(home, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nbroken\n')
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _fill_form(app, pilot, bad, name="bad-data")
        await _settle(app, pilot)
        status = str(app.screen.query_one("#form-status", Static).render())
        assert status.startswith("dataset: 1 error; line 2: invalid JSON"), status
        assert app.screen.query_one("#start", Button).disabled
        await pilot.press("ctrl+s")
        await _settle(app, pilot)
        assert app.current_mode == "train" and not app.training_running
        assert any("line 2: invalid JSON" in str(n.message) for n in app._notifications)
    assert not (home.adapters_dir / "bad-data").exists()


async def test_a_missing_dataset_shows_before_start(home, tmp_path):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _fill_form(app, pilot, tmp_path / "nowhere.jsonl", name="missing")
        await _settle(app, pilot)
        assert "nowhere.jsonl: no such file or folder" in str(app.screen.query_one("#form-status", Static).render())
        assert app.screen.query_one("#start", Button).disabled


def test_theme_files_load_and_bad_ones_are_reported(tmp_path):
    from lora_tui.themes import BUILT_IN_THEMES

    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#123456"\n')
    (tmp_path / "broken.toml").write_text('name = "broken"\nprimary = "not-a-colour"\n')
    themes, problems = load_themes(BUILT_IN_THEMES, tmp_path)
    names = {t.name for t in themes}
    assert {"lora-dark", "lora-light", "lora-high-contrast", "mine"} <= names
    assert [(p.path.name, "is not a colour" in p.message) for p in problems] == [("broken.toml", True)]
    assert theme_from_file(BUILT_IN_THEMES / "lora-light.toml").dark is False


async def test_chosen_theme_is_kept_in_settings(home):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = "lora-high-contrast"
        await pilot.pause()
    assert Settings.load(home).theme == "lora-high-contrast"
    app = make_app()
    async with app.run_test(size=(80, 24)):
        assert app.theme == "lora-high-contrast"


async def test_dashboard_follows_a_run_from_another_terminal(home, tiny_model_dir, tmp_path):
    """A run written by `lora-tui train` elsewhere: replayed, then followed as it grows."""
    from trainkit import train

    train(tiny_model_dir, tmp_path / "data", home.adapters_dir / "cli-run", epochs=2)
    events_file = home.adapters_dir / "cli-run" / "events.jsonl"
    lines = events_file.read_text().splitlines(keepends=True)
    cut = len(lines) // 2
    events_file.write_text("".join(lines[:cut]) + lines[cut][:10])  # half written, as while training
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.follow_run(home.adapters_dir / "cli-run")
        await pilot.pause()
        shown = len(app.screen.query_one(LossChart).train)
        assert 0 < shown < 8
        events_file.write_text("".join(lines))  # the other terminal carries on
        await asyncio.sleep(1.2)
        await pilot.pause()
        assert len(app.screen.query_one(LossChart).train) == 8
        assert "finished (completed) at step 8" in _log_text(app.screen)
        assert not app.training_running


async def test_first_model_is_preselected(home):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await _settle(app, pilot)
        assert app.screen.query_one("#pick-model", Select).value == str(home.models_dir / "tiny")


async def test_start_needs_a_model(isolated_home, tmp_path):
    write_dataset(tmp_path / "data", arithmetic_rows(4))
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await _settle(app, pilot)
        app.screen.query_one("#pick-data", Input).value = str(tmp_path / "data")
        app.screen.query_one("#pick-name", Input).value = "x"
        await pilot.pause()
        assert app.screen.query_one("#start", Button).disabled
        assert "choose a model" in str(app.screen.query_one("#form-status").render())


async def test_estimate_measures_real_steps_and_starts_nothing(home, tmp_path):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _fill_form(app, pilot, tmp_path / "data", name="estimated")
        await pilot.press("ctrl+e")
        await _settle(app, pilot)
        status = str(app.screen.query_one("#form-status").render())
        assert status.startswith("measured: ") and " per epoch (4 steps of" in status and "peak " in status
        assert app.current_mode == "train" and not app.training_running
    assert not (home.adapters_dir / "estimated").exists()


async def test_hold_out_validation_from_one_file(home, tmp_path):
    single = tmp_path / "all.jsonl"
    single.write_text((tmp_path / "data" / "train.jsonl").read_text())
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _fill_form(app, pilot, single, name="held-out", epochs="1")
        app.screen.query_one("#pick-valid", Select).value = "0.2"
        await pilot.press("ctrl+s")
        await _wait_for_run(app, pilot)
        assert "started: " in _log_text(app.screen)
    split = home.runs_dir / "held-out" / "data"
    assert (split / "valid.jsonl").read_text().count("\n") == 3 and (split / "train.jsonl").read_text().count(
        "\n"
    ) == 13
    assert json.loads((home.adapters_dir / "held-out" / "lora_tui.json").read_text())["best_val_loss"] > 0


async def test_hosts_field_is_checked_then_two_ranks_train_from_the_form(home, tmp_path):
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text("[not json")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _fill_form(app, pilot, tmp_path / "data", name="two-ranks")
        app.screen.query_one("#pick-hosts", Input).value = str(hostfile)
        await pilot.pause()
        assert "hosts: " in str(app.screen.query_one("#form-status").render())
        assert app.screen.query_one("#start", Button).disabled
        hostfile.write_text(json.dumps([{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}] * 2))
        app.screen.query_one("#pick-hosts", Input).value = str(hostfile) + " "  # edited: checked again
        await pilot.pause()
        assert not app.screen.query_one("#start", Button).disabled
        await pilot.press("ctrl+s")
        await _wait_for_run(app, pilot)
        dashboard = app.screen
        assert "2 ranks" in str(dashboard.query_one("#run-title").render())
        assert "tok/s (all ranks)" in str(dashboard.query_one("#run-numbers").render())
        assert "finished (completed) at step 8" in _log_text(dashboard)
    assert (home.runs_dir / "two-ranks" / "launch.log").exists()
    assert json.loads((home.adapters_dir / "two-ranks" / "lora_tui.json").read_text())["status"] == "finished"


async def test_quit_while_training_asks_then_saves_and_exits(home, tmp_path, slow_training):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _start_a_long_run(app, pilot, tmp_path / "data", "quitter")
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.click("#ok")
        await wait_until(lambda: not app.is_running, "the app to quit", timeout=30)
    assert json.loads((home.adapters_dir / "quitter" / "lora_tui.json").read_text())["status"] == "cancelled"


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGHUP"])
async def test_sigterm_or_sighup_while_training_saves_and_exits(home, tmp_path, slow_training, signal_name):
    """kill, launchd, tmux kill-session (SIGTERM) or a dropped SSH connection (SIGHUP): as quitting, unasked."""
    import os
    import signal

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _start_a_long_run(app, pilot, tmp_path / "data", "signalled")
        os.kill(os.getpid(), getattr(signal, signal_name))  # delivered to this process, handled by the app's loop
        await wait_until(lambda: not app.is_running, "the app to stop", timeout=30)
    assert app.stopped_by == signal_name
    adapter = home.adapters_dir / "signalled"
    assert (adapter / "adapters.safetensors").is_file()
    if signal_name == "SIGTERM":
        assert json.loads((adapter / "lora_tui.json").read_text())["status"] == "cancelled"
        return
    # The terminal went away: the saved run goes on in the background and finishes there.
    assert app.handed_off_log is not None
    await wait_until(
        lambda: json.loads((adapter / "lora_tui.json").read_text())["status"] == "finished", "the run", timeout=180
    )


async def test_a_name_another_process_is_training_is_refused_on_the_form(home, tmp_path):
    app = make_app()
    with adapter_lock(home.adapters_dir, "busy") as other_run:
        async with app.run_test(size=(120, 40)) as pilot:
            await _fill_form(app, pilot, tmp_path / "data", name="busy")
            status = str(app.screen.query_one("#form-status", Static).render())
            assert f"is being trained by process {other_run.pid}" in status
            assert app.screen.query_one("#start", Button).disabled
            app.screen.query_one("#pick-name", Input).value = "free"  # Start is there for another name
            await pilot.pause()
            assert not app.screen.query_one("#start", Button).disabled


async def test_the_dashboard_shows_the_latest_sample_answers_under_their_prompts(home):
    from lora_tui.core.training.events import Sample
    from lora_tui.messages import TrainingEventPosted

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        panel = app.screen.query_one("#run-samples", Static)
        assert not panel.display
        app.post_message(
            TrainingEventPosted(Sample(step=4, prompts=["What is 2 plus 2?"], answers=["It is 4."]), live=False)
        )
        await pilot.pause()
        assert panel.display and "What is 2 plus 2?\n  It is 4." in str(panel.render())


async def test_the_dashboard_shows_drift_from_the_base_at_each_validation(home):
    from lora_tui.core.training.events import DriftCheck
    from lora_tui.messages import TrainingEventPosted

    step = a_step(step=8)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        for event in (step, DriftCheck(step=8, drift=0.125, changed=3, prompts=24, known=8, kept=7)):
            app.post_message(TrainingEventPosted(event, live=False))
        await pilot.pause()
        numbers = str(app.screen.query_one("#run-numbers", Static).render())
        assert "drift 0.12: 3 of 24 general answers changed\n7 of 8 facts the base knew kept" in numbers
        assert (
            "drift step 8: 0.12 from the base (3 of 24 general answers changed; 7 of 8 facts it knew kept)"
            in "".join(str(line.text) for line in app.screen.query_one("#run-log").lines)
        )


async def test_a_preference_run_shows_its_reward_margin_and_accuracy_on_a_key(home):
    from lora_tui.core.training.events import Validation
    from lora_tui.messages import TrainingEventPosted
    from lora_tui.widgets.loss_chart import LossChart

    rewards = {"chosen_reward": 0.4, "rejected_reward": -0.2, "reward_margin": 0.6, "reward_accuracy": 0.75}
    step = a_step(step=1, **rewards)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        for event in (step, Validation(step=1, val_loss=0.69, **{**rewards, "reward_accuracy": 1.0})):
            app.post_message(TrainingEventPosted(event, live=False))
        await pilot.pause()
        numbers = str(app.screen.query_one("#run-numbers", Static).render())
        assert "margin 0.600  accuracy 0.75" in numbers and "valid margin 0.600  accuracy 1.00" in numbers
        chart = app.screen.query_one(LossChart)
        await pilot.press("r")
        assert chart.view == "rewards" and chart.margins["valid"] == [(1, 0.6)]
        assert chart.accuracies["train"] == [(1, 0.75)]
        await pilot.press("r")
        assert chart.view == "loss"


def a_step(**fields):
    from lora_tui.core.training.events import Step

    typical = dict(epoch=0.5, train_loss=1.2, learning_rate=1e-4, tokens_per_second=900.0, iterations_per_second=1.5)
    return Step(**{**typical, "trained_tokens": 4000, "peak_memory_bytes": 2**30, "eta_seconds": 30.0, **fields})


async def test_samples_at_80x24_leave_the_chart_and_numbers_their_rows(home):
    from lora_tui.core.training.events import Sample
    from lora_tui.messages import TrainingEventPosted

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        answers = ["An answer that goes on for a while, as sampled answers do. " * 3] * 4
        prompts = [f"Prompt {i}?" for i in range(4)]
        for event in (a_step(step=1), Sample(step=1, prompts=prompts, answers=answers)):
            app.post_message(TrainingEventPosted(event, live=False))
        await pilot.pause()
        assert app.screen.query_one("#dashboard-top").region.height >= 12
        assert "tok/s" in str(app.screen.query_one("#run-numbers", Static).render())


async def test_a_grpo_run_charts_its_rewards_and_shows_the_groups_best_and_worst_answer(home):
    from lora_tui.core.training.events import Sample, Validation
    from lora_tui.messages import TrainingEventPosted
    from lora_tui.widgets.loss_chart import LossChart

    grpo = {"reward": 0.5, "reward_std": 0.25, "rewards": {"exact": {"mean": 0.5, "std": 0.25}}, "kl": 0.01}
    events = (
        a_step(step=1, **grpo, completion_tokens=9.5, flat_groups=0.25),
        Validation(step=1, val_loss=-0.75, reward=0.75, rewards={"exact": 0.75}),
        Sample(step=1, prompts=["Opposite of hot?"] * 2, answers=["Cold.", "Warm, I think."], rewards=[1.0, 0.0]),
    )
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        for event in events:
            app.post_message(TrainingEventPosted(event, live=False))
        await pilot.pause()
        chart = app.screen.query_one(LossChart)
        assert chart.view == "rewards" and chart.rewards == {"train": [(1, 0.5)], "valid": [(1, 0.75)]}
        numbers = str(app.screen.query_one("#run-numbers", Static).render())
        assert "reward 0.500±0.250  kl 0.0100" in numbers and "flat groups 25%" in numbers
        assert "valid reward 0.750 (greedy)" in numbers
        samples = str(app.screen.query_one("#run-samples", Static).render())
        assert "best (1.00) Cold." in samples and "worst (0.00) Warm, I think." in samples
        await pilot.press("r")  # the loss, on the same key
        assert chart.view == "loss"
