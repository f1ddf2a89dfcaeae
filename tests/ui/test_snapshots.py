"""Snapshots of each built screen at 80x24 and 120x40 (pytest-textual-snapshot).

Update after an intended change with `pytest tests/ui/test_snapshots.py --snapshot-update`
and look at the report before committing.
"""

import pytest
from textual.widgets import Input

from lora_tui.app import make_app

SIZES = [(80, 24), (120, 40)]


async def _still(pilot):
    for widget in pilot.app.query(Input):
        widget.cursor_blink = False
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("area", ["train", "dashboard"])
def test_screen(snap_compare, isolated_home, area, size):
    async def run_before(pilot):
        await pilot.press({"train": "2", "dashboard": "3"}[area])
        await _still(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


def test_invalid_field_snapshot(snap_compare, isolated_home):
    async def run_before(pilot):
        await _still(pilot)
        pilot.app.screen.query_one("#param-rank", Input).value = "300"
        await _still(pilot)

    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=run_before)
