"""App-wide messages. Screens post requests that bubble up to the app; the app owns the training
worker and the moves between areas.

Training:        TrainingRequested -> TrainingEventPosted ... (TrainingCancelRequested) -> TrainingEventPosted(finished)
Between areas:   AdapterChatRequested, AdapterShowRequested, AdapterTrainAgainRequested, DatasetTrainRequested
Getting models:  ModelFetchRequested -> (dialog) ModelFetchStarted -> ModelFetchProgress ... -> ModelFetchEnded
Serving:         ServingToggleRequested -> ServingStarted ... ServingToggleRequested -> ServingEnded
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message
from textual.widget import Widget

from lora_tui.core.adapters.registry import AdapterInfo
from lora_tui.core.models.gguf_stores import StoredGGUF
from lora_tui.core.training.events import Event
from lora_tui.core.training.job import TrainingJob

if TYPE_CHECKING:  # the server's stack (Starlette, uvicorn) loads only when something is served
    from lora_tui.core.serving.server import Service


@dataclass
class TrainingRequested(Message):
    job: TrainingJob
    hostfile: Path | None = None  # train across the machines it names (mlx.launch)


@dataclass
class TrainingEventPosted(Message):
    """One event of the run the dashboard shows (from the worker or a followed file)."""

    event: Event
    live: bool = True


class TrainingCancelRequested(Message):
    """Stop the run after its current step; it saves, and --resume continues it."""


@dataclass
class AdapterChatRequested(Message):
    """Open Chat talking to this adapter."""

    name: str


@dataclass
class AdapterShowRequested(Message):
    """Open Adapters with this adapter selected."""

    name: str


@dataclass
class AdapterTrainAgainRequested(Message):
    """Open Train filled with this adapter's model, data and parameters, under a new name."""

    adapter: AdapterInfo


@dataclass
class DatasetTrainRequested(Message):
    """Open Train with this dataset chosen."""

    path: Path


@dataclass
class ModelFetchRequested(Message):
    """A model picker's user chose a GGUF from Ollama or LM Studio (`stored`), or to download from the hub."""

    picker: Widget
    stored: StoredGGUF | None = None


@dataclass
class ModelFetchStarted(Message):
    """Import `stored` under `name`, or download the hub id `repo`."""

    stored: StoredGGUF | None
    name: str | None = None
    repo: str | None = None


class ModelFetchStopRequested(Message):
    """Stop the import after its current tensor (a download cannot stop half-way)."""


@dataclass
class ModelFetchProgress(Message):
    done: int
    total: int
    started: float  # time.monotonic() when it began


@dataclass
class ModelFetchEnded(Message):
    path: Path | None
    error: str | None = None


@dataclass
class ServingToggleRequested(Message):
    """Serve `adapter`'s base with all its adapters over HTTP; with no adapter, stop the server that runs."""

    adapter: AdapterInfo | None = None


@dataclass
class ServingStarted(Message):
    service: Service


@dataclass
class ServingEnded(Message):
    error: str | None = None
