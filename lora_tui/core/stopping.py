"""Signals that ask long work to stop after its current step, as Ctrl-C does.

`kill`, launchd and tmux's kill-session send SIGTERM; a dropped SSH connection sends SIGHUP.
Each means what Ctrl-C means to lora-tui: stop after this step or batch, save, say so.
After SIGHUP the terminal is gone and writing to it fails, so what would have gone to it
goes to /dev/null (a run's progress is in its events.jsonl all the same).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP (the terminal went away)"}


@contextlib.contextmanager
def stop_on_signals(
    stop: threading.Event, on_first: Callable[[str], None] = lambda name: None, second_aborts: bool = True
) -> Iterator[None]:
    """While inside, the first of Ctrl-C, SIGTERM or SIGHUP sets `stop` (and calls `on_first` with its name);
    with `second_aborts`, another one raises KeyboardInterrupt. Main thread only, as Python's signals are."""

    def handler(signum, frame) -> None:
        if signum == signal.SIGHUP:
            _terminal_gone()
        if stop.is_set():
            if second_aborts:
                raise KeyboardInterrupt
            return
        stop.set()
        on_first(NAMES.get(signum, f"signal {signum}"))

    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, earlier in previous.items():
            signal.signal(number, earlier)


def _terminal_gone() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)
