"""Runs that outlive the app: a run handed to a background `lora-tui train --resume` when the app quits (or its
terminal goes away), and runs in progress found again when an app starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lora_tui.core.adapters.lock import LOCKS, Holder, holder
from lora_tui.core.locations import Locations
from lora_tui.core.training.job import TrainingJob


def go_on_in_background(job: TrainingJob, locations: Locations) -> Path:
    """The run, saved by the app a moment ago, resumed by `lora-tui train --resume` in its own session (no
    terminal: it survives the app, the terminal and the SSH connection); its output in runs/NAME/background.log.
    Resuming is exact, so the run goes on as if the app had never stopped it."""
    name = job.adapter_dir.name
    log = locations.runs_dir / name / "background.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as output:
        subprocess.Popen(
            [sys.executable, "-m", "lora_tui", "train", "--name", name, "--resume"],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return log


def runs_in_progress(adapters_dir: Path) -> list[tuple[str, Holder]]:
    """Adapters that a live process is training now (its lock held), with who trains them."""
    locks = Path(adapters_dir) / LOCKS
    if not locks.is_dir():
        return []
    found = []
    for lock in sorted(locks.glob("*.lock")):
        who = holder(adapters_dir, lock.stem)
        if who is not None and who.doing == "training":
            found.append((lock.stem, who))
    return found
