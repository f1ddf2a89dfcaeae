"""Pilot tests: a GGUF model of Ollama's offered in the model picker, imported from a dialog with progress."""

from pathlib import Path

import pytest
from ollamastore import add_ollama_model
from textual.widgets import Button, Input, ProgressBar, Select, Static
from tinymodels import write_gguf
from uikit import settle, wait_until

from lora_tui.app import make_app
from lora_tui.screens.model_fetch import FetchModelDialog
from lora_tui.widgets.model_picker import HUB_CHOICE, IMPORT_PREFIX


@pytest.fixture
def ollama_home(isolated_home, tiny_model_dir, tmp_path):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "tiny.gguf", "Q8_0")
    add_ollama_model(Path.home() / ".ollama" / "models", "tiny:q8", gguf_file)
    return isolated_home


def _picker_labels(select: Select) -> list[str]:
    return [str(prompt) for prompt, _ in select._options]


async def _choose_in_train(app, pilot, wanted) -> tuple[Select, FetchModelDialog]:
    """Choose the Train form's model option that `wanted(value)` picks; the fetch dialog it opens."""
    await settle(pilot)
    await pilot.press("2")
    await settle(pilot)
    picker = app.screen.query_one("#pick-model", Select)
    picker.value = next(value for _, value in picker._options if wanted(str(value)))
    await wait_until(lambda: isinstance(app.screen, FetchModelDialog), "the fetch dialog")
    await pilot.pause()
    return picker, app.screen


def _an_import(value: str) -> bool:
    return value.startswith(IMPORT_PREFIX)


async def test_an_ollama_model_is_imported_from_the_picker(ollama_home):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        picker, dialog = await _choose_in_train(app, pilot, _an_import)
        assert "tiny:q8 (Ollama Q8_0: import)" in _picker_labels(picker)
        assert picker.value is Select.NULL  # nothing was a model yet: the picker kept what it had
        assert dialog.query_one("#fetch-name", Input).value == "tiny-q8"
        await pilot.press("enter")
        await wait_until(lambda: not isinstance(app.screen, FetchModelDialog), "the import to finish")
        imported = ollama_home.models_dir / "tiny-q8"
        assert (imported / "config.json").is_file()
        await wait_until(lambda: picker.value == str(imported), "the imported model to be chosen")


async def test_the_import_dialog_shows_progress_and_a_problem_keeps_it_open(ollama_home):
    (ollama_home.models_dir / "taken").mkdir(parents=True)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        _, dialog = await _choose_in_train(app, pilot, _an_import)
        for button in dialog.query(Button):  # at 80x24, in full view
            assert button.region.right <= 80 and button.region.bottom <= 24 and button.region.height > 0
        dialog.query_one("#fetch-name", Input).value = "taken"
        await pilot.press("enter")
        problem = dialog.query_one(".dialog-problem", Static)
        await wait_until(lambda: "already exists" in str(problem.render()), "the name clash to be shown")
        assert isinstance(app.screen, FetchModelDialog) and not dialog.running
        dialog.query_one("#fetch-name", Input).value = "fresh"
        dialog.show_progress(50, 100, 0.0)
        assert dialog.query_one("#fetch-progress", ProgressBar).percentage == 0.5
        assert "50 B of 100 B" in str(dialog.query_one("#fetch-status", Static).render())
        await pilot.press("escape")
        await wait_until(lambda: not isinstance(app.screen, FetchModelDialog), "Esc to close the dialog")


async def test_the_hub_choice_asks_for_an_id_and_checks_it(isolated_home):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        picker, _ = await _choose_in_train(app, pilot, lambda value: value == HUB_CHOICE)
        assert "download from the Hugging Face hub..." in _picker_labels(picker)
        await pilot.press(*"nonsense", "enter")
        problem = app.screen.query_one(".dialog-problem", Static)
        assert "A hub id reads ORG/NAME" in str(problem.render())
        await pilot.press("escape")
        assert not isinstance(app.screen, FetchModelDialog)
