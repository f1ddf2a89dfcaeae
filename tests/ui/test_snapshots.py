"""Snapshots of each built screen at 80x24 and 120x40 (pytest-textual-snapshot).

Update after an intended change with `pytest tests/ui/test_snapshots.py --snapshot-update`
and look at the report before committing.
"""

from pathlib import Path

import pytest
from textual.widgets import Input

from lora_tui.app import make_app
from lora_tui.settings import Settings
from uikit import still

GOOD_DATA = Path(__file__).parent.parent / "data" / "good"

SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("area", ["datasets", "train", "dashboard"])
def test_screen(snap_compare, isolated_home, area, size):
    Settings(datasets_root=str(GOOD_DATA)).save(isolated_home)

    async def run_before(pilot):
        await pilot.press({"datasets": "1", "train": "2", "dashboard": "3"}[area])
        await still(pilot)
        if area == "datasets":
            await _open_dataset(pilot, GOOD_DATA / "chat.jsonl")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


def test_invalid_field_snapshot(snap_compare, isolated_home):
    async def run_before(pilot):
        await still(pilot)
        pilot.app.screen.query_one("#param-rank", Input).value = "300"
        await still(pilot)

    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=run_before)


async def _open_dataset(pilot, path):
    box = pilot.app.screen.query_one("#dataset-path", Input)
    box.value = str(path)
    box.focus()
    await pilot.press("enter")
    await still(pilot)
    box.value = ""  # the absolute path differs between checkouts
    pilot.app.screen.query_one("#dataset-tree").focus()
    await still(pilot)
