"""Helpers for pilot tests."""

from __future__ import annotations

from contextlib import suppress

from textual.widgets import Input
from textual.worker import WorkerCancelled

# DirectoryTree keeps a loader worker alive for as long as it is mounted.
ENDLESS_GROUPS = {"_loader"}


async def settle(pilot) -> None:
    """Wait for every worker that finishes on its own, then for the screen to catch up."""
    app = pilot.app
    finite = [w for w in app.workers if w.group not in ENDLESS_GROUPS]
    if finite:  # an empty list would mean "all workers" to wait_for_complete
        with suppress(WorkerCancelled):
            await app.workers.wait_for_complete(finite)
    await pilot.pause()


async def still(pilot) -> None:
    """Settle, with no blinking cursor: ready for a snapshot."""
    for widget in pilot.app.query(Input):
        widget.cursor_blink = False
    await settle(pilot)
