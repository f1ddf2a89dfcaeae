"""Helpers for pilot tests."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

import pytest
from textual.widgets import Input
from textual.worker import WorkerCancelled

# DirectoryTree keeps a loader worker alive for as long as it is mounted.
ENDLESS_GROUPS = {"_loader"}


async def settle(pilot, rounds: int = 10) -> None:
    """Wait for every worker that finishes on its own and for the messages they post,
    including workers those messages start, then for the screen to catch up."""
    app = pilot.app
    for _ in range(rounds):
        await pilot.pause()
        running = [w for w in app.workers if w.group not in ENDLESS_GROUPS and not w.is_finished]
        if not running:
            break
        with suppress(WorkerCancelled):
            await app.workers.wait_for_complete(running)


async def still(pilot) -> None:
    """Settle, with no blinking cursor: ready for a snapshot."""
    for widget in pilot.app.query(Input):
        widget.cursor_blink = False
    await settle(pilot)


async def wait_until(condition, what: str, timeout: float = 120.0, interval: float = 0.05) -> None:
    """Poll `condition` until it holds; fail the test, naming `what`, after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)
