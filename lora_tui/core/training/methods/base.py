"""What every training method gives the loop.

The loop (epochs, steps, accumulation, ranks, checkpoints, events, cancel) calls
these and nothing else: a method prepares its data, plans each epoch's batches,
turns a batch into micro-batches of arrays, computes its loss from them, and says
what its statistics mean. A new method is one module with a subclass of `Method`
and one line in `methods/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from lora_tui.core.data.records import Record
from lora_tui.core.training.batching import BatchPlan, Example
from lora_tui.core.training.events import Event
from lora_tui.core.training.job import TrainingJob
from lora_tui.core.training.params import TrainingParams
from lora_tui.core.training.ranks import Ranks


@dataclass
class RunContext:
    """What a method may use of the run: the model, its tokenizer, the job, the ranks, and where notes go."""

    job: TrainingJob
    model: object
    tokenizer: object
    ranks: Ranks
    emit: Callable[[Event], Event]
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # the dataset's files by split (messages name them)

    @property
    def params(self) -> TrainingParams:
        return self.job.params


@dataclass
class MicroBatch:
    arrays: tuple  # the method's loss arguments after the model (mlx arrays, or None)
    tokens: int  # real tokens in it, for tokens per second


class Method:
    name: ClassVar[str]
    data: ClassVar[str]  # what it trains on: "records", "pairs" or "prompts" (see data_kind)
    stats_size: ClassVar[int] = 1  # length of the statistics vector its loss sums (at least 1: MLX needs a shape)
    metrics_name: ClassVar[str] = ""  # its metrics in lora_tui.json: final_<name>, final_val_<name>

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.params = context.params
        self.model = context.model
        self.tokenizer = context.tokenizer
        self.ranks = context.ranks
        self.notes = context.notes

    # Data -----------------------------------------------------------------------

    def prepare(self, train: list[Record], valid: list[Record]) -> None:
        """Tokenize (and whatever else the method needs before the first step)."""
        raise NotImplementedError

    def train_records(self) -> int:
        """Records an epoch trains on (for the Started event)."""
        raise NotImplementedError

    def valid_records(self) -> int:
        raise NotImplementedError

    def plan(self, split: str, epoch: int) -> BatchPlan:
        raise NotImplementedError

    def train_examples_planned(self) -> list[Example] | None:
        """The examples the training plan's indices name (to find its longest batch); None: not by length."""
        return None

    def micro_batches(self, split: str, rows, whole: bool = False) -> list[MicroBatch]:
        """This rank's share of a batch as micro-batches (`whole`: one, for validation)."""
        raise NotImplementedError

    # Loss and metrics -------------------------------------------------------------

    def loss(self, model, *arrays):
        """(mean loss, what it is a mean over, statistics summed over the micro-batch); compiled by the loop."""
        raise NotImplementedError

    def metrics(self, sums: np.ndarray) -> dict:
        """The Step and Validation fields the summed statistics give (none by default)."""
        return {}

    def validate(self, val_batches: int) -> tuple[float, dict]:
        """The validation loss over up to `val_batches` batches, and its metrics."""
        import mlx.core as mx

        self.model.eval()
        total, count, stats = 0.0, 0.0, np.zeros(self.stats_size)
        for rows in self.plan("valid", 0).rows[:val_batches]:
            for micro in self.micro_batches("valid", rows, whole=True):
                loss, n, batch_stats = self.loss(self.model, *micro.arrays)
                mx.eval(loss, n, batch_stats)
                total += float(loss) * float(n)
                count += float(n)
                stats += np.array(batch_stats)
        self.model.train()
        summed = self.ranks.sum([total, count, *stats.tolist()])
        return summed[0] / max(summed[1], 1.0), self.metrics(np.array(summed[2:]))

    # Around the loop -----------------------------------------------------------------

    def after_step(self, step: int) -> None:
        """After an optimizer step (GRPO reports its group's best and worst answers)."""

    def after_validation(self, step: int) -> None:
        """After each validation (SFT checks drift when it replays)."""

    def reported_parameters(self) -> dict:
        """Settings the method decided from the data, reported with the parameters (SFT: mask_prompt)."""
        return {}
