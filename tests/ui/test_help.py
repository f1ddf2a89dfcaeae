"""`?` and F1: every area says what it is for and lists its keys; Esc closes it."""

import pytest
from rich.console import Console
from textual.widgets import Input, Static
from uikit import settle

from lora_tui.app import make_app
from lora_tui.screens.help import HelpScreen


def plain(renderable) -> str:
    console = Console(width=200, color_system=None)
    with console.capture() as captured:
        console.print(renderable)
    return captured.get()


@pytest.mark.parametrize("area", ["1", "2", "3", "4", "5"])
async def test_help_names_the_areas_purpose_and_keys(area):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(area)
        await settle(pilot)
        screen = app.screen
        typing = isinstance(app.focused, Input)
        await pilot.press("f1" if typing else "question_mark")  # `?` in a text box is just a question mark
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        purpose = str(app.screen.query_one("#help-purpose", Static).render())
        keys = plain(app.screen.keys_table())
        assert purpose.split()[:3] == screen.PURPOSE.split()[:3]
        shown = [b.description for b in screen.BINDINGS if b.description]
        assert shown and all(description in keys for description in shown)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_question_mark_in_a_text_box_is_typed():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await settle(pilot)
        assert isinstance(app.focused, Input)
        await pilot.press("question_mark")
        assert not isinstance(app.screen, HelpScreen) and app.focused.value.endswith("?")


async def test_the_palette_lists_every_command_before_anything_is_typed_and_has_our_help():
    from textual.command import CommandList, CommandPalette
    from uikit import wait_until

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        results = app.screen.query_one(CommandList)
        await wait_until(lambda: results.option_count > 5, "the palette's commands")
        shown = [str(results.get_option_at_index(i).prompt) for i in range(results.option_count)]
        assert any("Go to datasets" in text for text in shown) and any("Help" in text for text in shown)
        assert not any(text.startswith("Keys") for text in shown)
