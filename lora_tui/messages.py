"""App-wide messages: the training worker posts these; handlers own all state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from lora_tui.core.training.events import Event
from lora_tui.core.training.loop import TrainingJob


@dataclass
class TrainingRequested(Message):
    job: TrainingJob
    hostfile: Path | None = None  # train across the machines it names (mlx.launch)


@dataclass
class TrainingEventPosted(Message):
    """One event of the run the dashboard shows (from the worker or a followed file)."""

    event: Event
    live: bool = True
