"""Keys land where the user looks: Esc leaves a text box, coming back to Train leaves none focused,
closing Chat's settings returns to the message box."""

from textual.widgets import Input
from uikit import settle

from lora_tui.app import make_app


async def test_esc_leaves_a_text_box_and_the_area_keys_work_again(isolated_home):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        box = app.screen.query_one("#pick-data", Input)
        box.focus()
        await pilot.press("x", "3")
        assert box.value == "x3" and app.current_mode == "train"  # in a box, keys are text
        await pilot.press("escape", "3")
        assert app.current_mode == "dashboard"


async def test_coming_back_to_train_types_nothing_into_the_box_left_last(isolated_home):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        box = app.screen.query_one("#pick-data", Input)
        box.focus()
        await app.switch_mode("adapters")  # as the command palette does, from inside the box
        await pilot.press("2")
        await pilot.pause()
        assert not isinstance(app.focused, Input)
        await pilot.press("4")
        assert app.current_mode == "adapters" and box.value == ""


async def test_closing_chat_settings_returns_to_the_message_box(isolated_home):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await settle(pilot)
        await pilot.press("ctrl+o")
        app.screen.query_one("#sampling-temperature", Input).focus()
        await pilot.press("ctrl+o")
        assert app.focused is app.screen.query_one("#chat-input", Input)
        await pilot.press("h", "i")
        assert app.focused.value == "hi"
