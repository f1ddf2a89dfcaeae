"""Unexpected errors in workers become notices.

Workers catch the errors they expect (UserError, OSError) and post a message
about them. Anything else would otherwise end the worker silently (with
exit_on_error=False) or end the app with a traceback: this shows it instead,
and the app keeps running.
"""

from __future__ import annotations

from textual.worker import Worker, WorkerState


class ReportsWorkerErrors:
    """Mix into a Screen or Widget whose workers use exit_on_error=False."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        where = event.worker.name.replace("_", " ")
        self.notify(f"Unexpected error ({where}): {type(error).__name__}: {error}", severity="error", timeout=15)
