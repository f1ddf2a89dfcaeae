"""Pilot tests of the Adapters screen, on adapters really trained on the tiny model."""

import json
import shutil

import pytest
from textual.widgets import Checkbox, DataTable, Input, OptionList, Select, Static
from uikit import settle, wait_until

from lora_tui.app import make_app
from lora_tui.core.adapters.layout import ADAPTER_WEIGHTS, METADATA
from lora_tui.widgets.loss_chart import LossChart


@pytest.fixture
def two_adapters(isolated_home, tiny_adapter, tiny_model_dir):
    """`arith` (as trained) and `zeta`, a copy with a lower final loss and an older date."""
    shutil.copytree(tiny_model_dir, isolated_home.models_dir / "tiny")
    for name in ("arith", "zeta"):
        shutil.copytree(tiny_adapter, isolated_home.adapters_dir / name)
    meta_file = isolated_home.adapters_dir / "zeta" / METADATA
    meta = json.loads(meta_file.read_text())
    meta.update(name="zeta", final_train_loss=0.001, created="2020-01-01T00:00:00")
    meta_file.write_text(json.dumps(meta))
    return isolated_home


async def _adapters(pilot):
    await pilot.press("4")
    await settle(pilot)
    await settle(pilot)  # the detail of the highlighted row loads after the list
    return pilot.app.screen


async def _export(pilot, out, export_format="peft") -> None:
    await pilot.press("e")
    await pilot.pause()
    pilot.app.screen.query_one("#export-format", Select).value = export_format
    pilot.app.screen.query_one("#export-out", Input).value = str(out)
    await pilot.click("#ok")
    await settle(pilot)


def _names(table: DataTable) -> list[str]:
    return [table.coordinate_to_cell_key((row, 0)).row_key.value for row in range(table.row_count)]


async def test_table_lists_and_sorts(two_adapters):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _adapters(pilot)
        table = screen.query_one(DataTable)
        assert _names(table) == ["arith", "zeta"]  # newest first
        assert [str(c.label) for c in table.columns.values()][:7] == [
            "name",
            "status",
            "base",
            "dataset",
            "created ▼",
            "loss",
            "val",
        ]
        await pilot.press("s")  # created, oldest first
        assert _names(table) == ["zeta", "arith"]
        await pilot.press("s", "s")  # loss, highest first; then lowest first
        assert str(table.columns["loss"].label) == "loss ▲"
        assert _names(table) == ["zeta", "arith"]


async def test_detail_shows_metadata_curves_and_checkpoints(two_adapters):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _adapters(pilot)
        meta = str(screen.query_one("#adapter-meta", Static).render())
        assert meta.startswith("arith") and "base model path:" in meta and "rank: 8" in meta
        chart = screen.query_one(LossChart)
        assert len(chart.train) == 8 and chart.valid  # 2 epochs of 4 steps, validated every 4
        checkpoints = screen.query_one("#checkpoint-list", OptionList)
        assert [checkpoints.get_option_at_index(i).id for i in range(checkpoints.option_count)] == [
            "step-0000004",
            "step-0000008",
        ]


async def test_promote_a_checkpoint(two_adapters):
    folder = two_adapters.adapters_dir / "arith"
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _adapters(pilot)
        checkpoints = screen.query_one("#checkpoint-list", OptionList)
        checkpoints.focus()
        checkpoints.highlighted = 0
        await pilot.press("p")
        await pilot.pause()
        await pilot.click("#ok")
        await settle(pilot)
    assert (folder / ADAPTER_WEIGHTS).read_bytes() == (
        folder / "checkpoints" / "step-0000004" / ADAPTER_WEIGHTS
    ).read_bytes()
    assert json.loads((folder / METADATA).read_text())["promoted_checkpoint"] == "step-0000004"


async def test_rename_then_delete_with_confirmation(two_adapters):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _adapters(pilot)
        await pilot.press("n")
        await pilot.pause()
        app.screen.query_one("#dialog-text", Input).value = "sums"
        await pilot.press("enter")
        await settle(pilot)
        assert (two_adapters.adapters_dir / "sums").is_dir() and not (two_adapters.adapters_dir / "arith").exists()
        table = app.screen.query_one(DataTable)
        await wait_until(lambda: "sums" in _names(table), "the table to list the new name")  # it reloads in a worker
        table.move_cursor(row=_names(table).index("sums"))
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("escape")  # cancel keeps it
        await settle(pilot)
        assert (two_adapters.adapters_dir / "sums").is_dir()
        await pilot.press("d")
        await pilot.pause()
        await pilot.click("#ok")
        await settle(pilot)
        assert not (two_adapters.adapters_dir / "sums").exists()
        assert _names(app.screen.query_one(DataTable)) == ["zeta"]


async def test_fuse_and_export(two_adapters, tmp_path):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _adapters(pilot)
        await pilot.press("f")
        await pilot.pause()
        app.screen.query_one("#fuse-out", Input).value = str(tmp_path / "fused")
        await pilot.press("tab", "space")  # full precision, from the keyboard
        assert app.screen.query_one("#fuse-dequantize", Checkbox).value is True
        await pilot.click("#ok")
        await settle(pilot)
        await _export(pilot, tmp_path / "peft")
    assert (tmp_path / "fused" / "config.json").is_file() and list((tmp_path / "fused").glob("*.safetensors"))
    assert json.loads((tmp_path / "peft" / "adapter_config.json").read_text())["peft_type"] == "LORA"


async def test_export_offers_every_format_and_says_how_to_use_it(two_adapters, tmp_path):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _adapters(pilot)
        await pilot.press("e")
        await pilot.pause()
        options = app.screen.query_one("#export-format", Select)._options
        assert [value for _, value in options] == ["peft", "gguf", "gguf-lora", "ollama", "lmstudio"]
        await pilot.press("escape")
        await _export(pilot, tmp_path / "to-ollama", "ollama")
        messages = [n.message for n in app._notifications]
        await settle(pilot)
        meta = str(app.screen.query_one("#adapter-meta", Static).render())
        assert "last export:" in meta and "ollama create" in meta  # kept on screen, not only in a toast
    assert (tmp_path / "to-ollama" / "Modelfile").is_file() and (tmp_path / "to-ollama" / "model.gguf").is_file()
    assert any("Use it: ollama create" in m for m in messages), messages
    assert any("Writing model.gguf" in m for m in messages), messages  # progress while it works


async def test_an_unexpected_error_in_a_job_is_a_notice(two_adapters, tmp_path, monkeypatch):
    from lora_tui.screens import adapters as adapters_screen

    def broken_export(*args, **kwargs):
        raise RuntimeError("the disk spoke in riddles")

    monkeypatch.setattr(adapters_screen, "export_adapter", broken_export)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _adapters(pilot)
        await _export(pilot, tmp_path / "peft")
        messages = [n.message for n in app._notifications]
        assert any("RuntimeError: the disk spoke in riddles" in m for m in messages), messages
        assert app.current_mode == "adapters" and app.is_running


async def test_open_in_chat_and_train_again(two_adapters):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _adapters(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert app.current_mode == "chat"
        assert app.screen.query_one("#chat-model-a", Select).value == "lora:arith"
        await pilot.press("escape", "4")
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        assert app.current_mode == "train"
        form = app.screen
        assert form.query_one("#pick-name", Input).value == "arith-2"
        assert form.query_one("#param-epochs", Input).value == "2"
        assert form.query_one("#param-learning_rate", Input).value == "0.005"
        assert form.query_one("#pick-model", Select).value == str(
            json.loads((two_adapters.adapters_dir / "arith" / "run.json").read_text())["model_path"]
        )


async def test_a_finished_run_is_not_resumed_and_a_cancelled_one_is(two_adapters):
    meta_file = two_adapters.adapters_dir / "arith" / METADATA
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _adapters(pilot)
        created = json.loads(meta_file.read_text())["created"]
        await pilot.press("r")
        await settle(pilot)
        messages = [n.message for n in app._notifications]
        assert any("finished" in m and "nothing to resume" in m for m in messages), messages
        assert app.current_mode == "adapters" and json.loads(meta_file.read_text())["created"] == created

        meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "status": "cancelled"}))
        await pilot.press("r")
        await settle(pilot)
        await wait_until(lambda: not app.training_running, "the resumed run to end", timeout=60, interval=0.1)
        assert app.current_mode == "dashboard"
        log = "".join(line.text for line in app.screen.query_one("#run-log").lines)
        assert "Resumed from step-0000008" in log and "finished (completed) at step 8" in log
        chart = app.screen.query_one(LossChart)  # the whole run, not the steps since the resume
        assert [step for step, _ in chart.train] == list(range(1, 9)) and chart.valid
        numbers = str(app.screen.query_one("#run-numbers", Static).render())
        assert "checkpoint -" not in numbers and "best val -" not in numbers


async def test_evaluate_shows_scores_filters_records_and_keeps_the_report(two_adapters):
    from lora_tui.screens.evaluation import EvalScreen

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _adapters(pilot)
        await pilot.press("v")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, EvalScreen)
        await wait_until(lambda: not screen.running, "the evaluation to end", timeout=120)
        await pilot.pause()
        summary = str(screen.query_one("#eval-summary", Static).render())
        assert "base " in summary and "adapter " in summary and "Saved " in summary
        table = screen.query_one(DataTable)
        assert table.row_count == 4  # the adapter's valid.jsonl
        await pilot.press("g")
        assert table.row_count == screen.document["regressions"]
        await pilot.press("a")
        table.focus()
        await pilot.press("down")
        await pilot.pause()
        assert "reference: It is " in str(screen.query_one("#eval-reference", Static).render())
        await pilot.press("escape")
        await settle(pilot)
        await settle(pilot)
        assert "evaluated " in str(app.screen.query_one("#adapter-meta", Static).render())


async def test_compare_marked_runs_overlays_curves_and_highlights_differences(two_adapters):
    from lora_tui.screens.compare import CompareChart, CompareScreen

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _adapters(pilot)
        await pilot.press("m")  # nothing marked yet: a notice, no screen
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press("space", "down", "space")
        assert app.screen.marked == {"arith", "zeta"}
        assert _names(app.screen.query_one(DataTable))  # still listed, now marked
        await pilot.press("m")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        table = screen.query_one(DataTable)
        assert [str(column.label) for column in table.columns.values()][1:] == ["arith", "zeta"]
        rows = {str(table.get_row_at(i)[0]): table.get_row_at(i) for i in range(table.row_count)}
        final = rows["final train loss"]
        assert str(final[2]) == "0.001" and "reverse" in str(final[1].style)  # differs: highlighted
        assert "reverse" not in str(rows["rank"][1].style)  # the same in both
        chart = screen.query_one(CompareChart)
        assert [run.name for run in chart.runs] == ["arith", "zeta"] and all(run.train for run in chart.runs)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)


async def test_a_broken_adapter_is_listed_with_its_reason_and_the_others_still_are(two_adapters):
    (two_adapters.adapters_dir / "zeta" / METADATA).write_text("this is not json {")
    app = make_app()
    notices = []
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        app.notify = lambda message, **kwargs: notices.append(message)
        screen = await _adapters(pilot)
        table = screen.query_one(DataTable)
        assert sorted(_names(table)) == ["arith", "zeta"]
        table.move_cursor(row=_names(table).index("zeta"))
        meta = screen.query_one("#adapter-meta", Static)
        await wait_until(lambda: "not valid JSON" in str(meta.render()), "the broken adapter's reason")
        assert "status: broken" in str(meta.render())
        assert not [n for n in notices if "Unexpected error" in n]


async def test_w_serves_the_base_and_its_adapters_and_counts_requests(two_adapters):
    import asyncio

    import httpx
    import openai

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _adapters(pilot)
        status = screen.query_one("#serve-status", Static)
        assert not status.display
        await pilot.press("w")
        await wait_until(lambda: app.service is not None, "the server to start")
        await pilot.pause()
        url = app.service.url
        assert status.display and url in str(status.render()) and "0 requests" in str(status.render())
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        models = await asyncio.to_thread(lambda: [m.id for m in client.models.list().data])
        assert models == ["tiny-llama", "arith", "zeta"]  # the base the adapters record
        question = [{"role": "user", "content": "What is 2 plus 2?"}]
        await asyncio.to_thread(client.chat.completions.create, model="zeta", messages=question, max_tokens=4)
        await wait_until(lambda: "1 request " in str(status.render()), "the request counter")
        await pilot.press("w")
        await wait_until(lambda: app.service is None and not status.display, "the server to stop")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/models")


async def test_export_fits_80x24_with_its_buttons_error_and_keys_in_sight(two_adapters):
    from lora_tui.widgets.app_footer import AppFooter

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _adapters(pilot)
        await pilot.press("e")
        await settle(pilot)
        dialog = app.screen
        dialog.query_one("#export-type", Input).value = "zz"
        dialog.action_submit()
        await pilot.pause()
        footer = dialog.query_one(AppFooter)
        above_footer = footer.region.y
        for selector in ("#ok", "#cancel", ".dialog-problem"):
            region = dialog.query_one(selector).region
            assert region.height > 0 and region.bottom <= above_footer, selector
        assert "zz" in str(dialog.query_one(".dialog-problem", Static).render())
        dialog.query_one("#export-out", Input).focus()
        await pilot.pause()
        keys = {binding.description for _, binding, enabled, _ in app.active_bindings.values() if enabled}
        assert {"Cancel", "Export"} <= keys


async def test_a_rename_to_a_taken_name_keeps_the_dialog_open(two_adapters):
    from lora_tui.screens.dialogs import TextDialog

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _adapters(pilot)
        await pilot.press("n")
        await pilot.pause()
        app.screen.query_one("#dialog-text", Input).value = "zeta"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, TextDialog)
        assert "'zeta' exists already" in str(app.screen.query_one(".dialog-problem").render())
        await pilot.press("escape")
        assert (two_adapters.adapters_dir / "arith").is_dir()


async def test_stopping_an_evaluation_says_so_and_leaves_a_still_bar(two_adapters):
    from textual.widgets import ProgressBar

    from lora_tui.screens.evaluation import EvalScreen

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        adapters = await _adapters(pilot)
        screen = EvalScreen(adapters.selected())
        screen.stop_flag.set()  # Esc before the first batch (the tiny model is too quick to catch)
        app.push_screen(screen)
        await wait_until(lambda: not screen.running, "the stopped evaluation to end", timeout=60)
        await pilot.pause()
        assert str(screen.query_one("#eval-phase", Static).render()) == "stopped"
        assert screen.query_one(ProgressBar).total is not None  # not the endless --% animation
        assert "Stopped before both models were measured" in str(screen.query_one("#eval-summary", Static).render())
