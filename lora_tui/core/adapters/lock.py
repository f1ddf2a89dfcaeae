"""One writer per adapter: an OS lock held for as long as a run trains it.

The lock is `adapters/.locks/NAME.lock`, taken with flock: it is released when
the process ends however it ends (SIGKILL included), so a stale lock never
blocks a resume. The file says who holds it (process, host, since when) so a
refusal can name the holder. Renaming, deleting, promoting and resuming take
the same lock for as long as they change the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lora_tui.core.errors import UserError

LOCKS = ".locks"
_PARTICIPLES = {
    "training": "trained",
    "preparing": "prepared for training",
    "renaming": "renamed",
    "deleting": "deleted",
    "promoting": "changed",
}


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    since: str  # local time, ISO 8601, seconds
    doing: str = "training"

    def sentence(self, name: str) -> str:
        return (
            f"The adapter {name!r} is being {_PARTICIPLES.get(self.doing, self.doing)} by process "
            f"{self.pid} on {self.host} (since {self.since.replace('T', ' ')}); wait for it to end, or stop it first."
        )


class AdapterBusy(UserError):
    """Another process (or another part of this one) holds the adapter."""

    def __init__(self, name: str, holder: Holder) -> None:
        super().__init__(holder.sentence(name))
        self.holder = holder


# Locks this process holds, by lock file: a second open file of the same lock in this
# process would be refused by flock too, but the holder must be known without reading.
_HELD: dict[Path, Holder] = {}


def lock_file(adapters_dir: Path, name: str) -> Path:
    return Path(adapters_dir) / LOCKS / f"{name}.lock"


@contextlib.contextmanager
def adapter_lock(adapters_dir: Path, name: str, doing: str = "training") -> Iterator[Holder]:
    """Hold the adapter's lock for the block; AdapterBusy (naming the holder) at once when another has it."""
    path = lock_file(adapters_dir, name)
    if path in _HELD:
        raise AdapterBusy(name, _HELD[path])
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(descriptor):
            raise AdapterBusy(name, _read_holder(path) or Holder(0, "another process", "unknown"))
        me = Holder(os.getpid(), socket.gethostname(), datetime.now().isoformat(timespec="seconds"), doing)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(me.__dict__).encode(), 0)
        _HELD[path] = me
        try:
            yield me
        finally:
            del _HELD[path]
    finally:
        os.close(descriptor)  # releases the flock


def _try_lock(descriptor: int, attempts: int = 4) -> bool:
    """flock, not waiting for a holder; a few quick retries ride out a reader's brief look (`holder`)."""
    for attempt in range(attempts):
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt < attempts - 1:
                time.sleep(0.05)
    return False


def holder(adapters_dir: Path, name: str) -> Holder | None:
    """Who holds the adapter now, or None."""
    path = lock_file(adapters_dir, name)
    if path in _HELD:
        return _HELD[path]
    if not path.is_file():
        return None
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(path) or Holder(0, "another process", "unknown")
    else:
        return None
    finally:
        os.close(descriptor)


def refuse_if_busy(adapters_dir: Path, name: str) -> None:
    found = holder(adapters_dir, name)
    if found is not None:
        raise AdapterBusy(name, found)


def _read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), str(data["since"]), str(data.get("doing", "training")))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # written a moment ago, not yet filled in
