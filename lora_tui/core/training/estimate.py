"""Time per epoch and peak memory, measured by running a few real training steps.

The trial trains the same model on the same data with the same parameters, in
a scratch folder that is removed afterwards; the first step (graph compile and
warm-up) is left out of the timing.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.training.events import Failed, Started, Step
from lora_tui.core.training.job import TrainingJob
from lora_tui.core.training.loop import run_training
from lora_tui.core.training.params import build_params
from lora_tui.core.units import counted, human_bytes, human_duration

TRIAL_STEPS = 4


@dataclass(frozen=True)
class Estimate:
    steps_measured: int
    seconds_per_step: float
    steps_per_epoch: int
    epochs: int
    tokens_per_second: float
    peak_memory_bytes: int
    predicted_peak_bytes: int | None = None  # what fit.py predicts for the run

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds_per_step * self.steps_per_epoch

    @property
    def total_seconds(self) -> float:
        return self.seconds_per_epoch * self.epochs

    def describe(self) -> str:
        predicted = f", predicted {human_bytes(self.predicted_peak_bytes)}" if self.predicted_peak_bytes else ""
        return (
            f"{human_duration(self.seconds_per_epoch)} per epoch ({self.steps_per_epoch} steps of "
            f"{self.seconds_per_step:.2f} s, {self.tokens_per_second:.0f} tok/s), "
            f"{human_duration(self.total_seconds)} for {counted(self.epochs, 'epoch')}; peak memory "
            f"{human_bytes(self.peak_memory_bytes)}{predicted} "
            f"(measured over {self.steps_measured} steps, the first on the longest batch; validation not included)"
        )

    def to_json(self) -> dict:
        return {**self.__dict__, "seconds_per_epoch": self.seconds_per_epoch, "total_seconds": self.total_seconds}


def estimate_run(job: TrainingJob, steps: int = TRIAL_STEPS) -> Estimate:
    """Train `steps` real steps of `job` in a scratch folder, the first on its longest batch, and time them
    (validation time not included)."""
    started: list[Started] = []
    measured: list[Step] = []
    stop = threading.Event()

    def listen(event) -> None:
        if isinstance(event, Started):
            started.append(event)
        elif isinstance(event, Step):
            measured.append(event)
            if len(measured) >= steps:
                stop.set()

    trial_params = build_params({**job.params.to_json(), "steps_per_eval": 100000, "save_every": 0})
    scratch = Path(tempfile.mkdtemp(prefix="lora-tui-estimate-"))
    try:
        trial = replace(job, adapter_dir=scratch / "trial", params=trial_params, resume=False, longest_first=True)
        outcome = run_training(trial, listen, stop)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if isinstance(outcome, Failed):
        raise UserError(f"The trial steps failed: {outcome.reason} {outcome.advice}".rstrip())
    if not started or not measured:
        raise UserError("The trial ran no training step; is the dataset empty?")
    timed = measured[1:] or measured  # the first step compiles the graph
    return Estimate(
        steps_measured=len(measured),
        seconds_per_step=statistics.median(1 / s.iterations_per_second for s in timed),
        steps_per_epoch=started[0].steps_per_epoch,
        epochs=job.params.epochs,
        tokens_per_second=statistics.median(s.tokens_per_second for s in timed),
        peak_memory_bytes=max(s.peak_memory_bytes for s in measured),
        predicted_peak_bytes=started[0].predicted_peak_bytes,
    )
