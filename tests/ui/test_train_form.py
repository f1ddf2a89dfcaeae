"""The Train form's small manners: "auto" is a value, the focused field's whole help shows,
and a name it filled in itself follows the next dataset sent from Datasets."""

import json

from textual.widgets import Input, Static
from uikit import settle

from lora_tui.app import make_app

ROW = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}


async def test_auto_is_a_value_and_the_focused_fields_help_is_shown_whole(isolated_home):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        alpha = app.screen.query_one("#param-alpha", Input)
        alpha.value = "auto"
        await pilot.pause()
        assert app.screen.query_one("#field-alpha").has_class("-invalid") is False
        app.screen.query_one("#param-grad_accumulation_steps", Input).focus()
        await pilot.pause()
        help_line = str(app.screen.query_one("#field-help", Static).render())
        assert help_line.startswith("grad accumulation steps: [")


async def test_a_name_the_form_filled_follows_the_next_dataset(isolated_home, tmp_path):
    for name in ("first", "second"):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(ROW) + "\n")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        for name in ("first", "second"):
            await pilot.press("1")
            await settle(pilot)
            app.screen.open(tmp_path / f"{name}.jsonl")
            await settle(pilot)
            app.screen.query_one("#dataset-tree").focus()
            await pilot.press("t")
            await settle(pilot)
            assert app.screen.query_one("#pick-name", Input).value == name
        app.screen.query_one("#pick-name", Input).value = "mine"
        await pilot.press("1")
        await settle(pilot)
        app.screen.query_one("#dataset-tree").focus()
        await pilot.press("t")
        await settle(pilot)
        assert app.screen.query_one("#pick-name", Input).value == "mine"  # typed by the user: kept
