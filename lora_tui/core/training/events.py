"""Typed training events: what the loop reports, what events.jsonl holds.

Each event is a small dataclass; `to_json` adds its `type` and the wall-clock
time, and `event_from_json` reads a line of events.jsonl back.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields

from lora_tui.core.training.adapted import describe_adapted
from lora_tui.core.training.memory import MemoryLimits
from lora_tui.core.units import human_bytes, human_duration


@dataclass(frozen=True)
class Event:
    time: float = field(default_factory=time.time, kw_only=True)

    @property
    def type(self) -> str:
        return _TYPE_NAMES[type(self)]

    def to_json(self) -> dict:
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True)
class Started(Event):
    parameters: dict
    trainable_parameters: int
    total_parameters: int
    total_steps: int
    steps_per_epoch: int
    train_records: int
    valid_records: int
    resumed_from_step: int = 0
    notes: list = field(default_factory=list)
    ranks: int = 1  # processes training together (data parallel)
    adapted: list = field(default_factory=list)  # where the LoRA went: adapted.Adapted.to_json() per projection
    memory_limits: dict = field(default_factory=dict)  # memory.MemoryLimits.to_json(): what was set for MLX
    predicted_peak_bytes: int | None = None  # fit.py's prediction for the run's records (None: not predicted)


@dataclass(frozen=True)
class Step(Event):
    step: int
    epoch: float
    train_loss: float
    learning_rate: float
    tokens_per_second: float
    iterations_per_second: float
    trained_tokens: int
    peak_memory_bytes: int
    eta_seconds: float
    # preference methods (dpo, orpo): mean rewards over the step's pairs, their margin, and the share ranked right
    chosen_reward: float | None = None
    rejected_reward: float | None = None
    reward_margin: float | None = None
    reward_accuracy: float | None = None
    # grpo: the total reward of the step's sampled answers (mean and spread), each reward's, the KL from the base
    # per answer token, the answers' mean length in tokens, and the share of groups whose answers all scored alike
    reward: float | None = None
    reward_std: float | None = None
    rewards: dict | None = None  # name -> {"mean": ..., "std": ...}
    kl: float | None = None
    completion_tokens: float | None = None
    flat_groups: float | None = None


@dataclass(frozen=True)
class Validation(Event):
    step: int
    val_loss: float  # grpo: minus the held-out reward, so lower is better as for the other methods
    chosen_reward: float | None = None  # preference methods: as on Step, over the held-out pairs
    rejected_reward: float | None = None
    reward_margin: float | None = None
    reward_accuracy: float | None = None
    reward: float | None = None  # grpo: the mean total reward of greedy answers to held-out prompts
    rewards: dict | None = None  # name -> mean


@dataclass(frozen=True)
class Sample(Event):
    """Greedy answers to the same validation prompts, at a validation: how the answers change as the loss falls."""

    step: int
    prompts: list
    answers: list
    rewards: list | None = None  # grpo: each answer's total reward (the step's best and worst answer of a group)


@dataclass(frozen=True)
class DriftCheck(Event):
    """At a validation, when training replays the base's answers: how far general answers moved from the base's."""

    step: int
    drift: float | None  # 0: the base's answers word for word; 1: no word in common
    changed: int
    prompts: int
    known: int = 0  # general facts the base answered right
    kept: int = 0  # of those, still answered right


@dataclass(frozen=True)
class Checkpoint(Event):
    path: str
    step: int
    val_loss: float | None


@dataclass(frozen=True)
class Finished(Event):
    step: int
    final_train_loss: float | None
    best_val_loss: float | None
    adapter_path: str
    reason: str = "completed"  # or "early stopping"


@dataclass(frozen=True)
class Notice(Event):
    """Something the person should know now, during the run (the system started swapping)."""

    step: int
    message: str


@dataclass(frozen=True)
class Cancelled(Event):
    step: int
    adapter_path: str


@dataclass(frozen=True)
class Failed(Event):
    reason: str
    advice: str = ""


_TYPE_NAMES = {
    Started: "started",
    Step: "step",
    Validation: "validation",
    Sample: "sample",
    DriftCheck: "drift",
    Checkpoint: "checkpoint",
    Finished: "finished",
    Cancelled: "cancelled",
    Failed: "failed",
    Notice: "notice",
}
_BY_NAME = {name: cls for cls, name in _TYPE_NAMES.items()}


def describe(event: Event) -> str:
    """The event as one line for people: the headless log prints it, the dashboard's log shows it."""
    if isinstance(event, Started):
        notes = "".join(f"note: {note}\n" for note in event.notes)
        adapted = (
            f"\nadapted: {describe_adapted(event.adapted, event.trainable_parameters, event.total_parameters)}"
            if event.adapted
            else ""
        )
        limits = MemoryLimits(**event.memory_limits).describe() if event.memory_limits else ""
        adapted += f"\nmemory limits: {limits}" if limits else ""
        if event.predicted_peak_bytes:
            adapted += f"\npredicted peak memory: {human_bytes(event.predicted_peak_bytes)}"
        return (
            f"{notes}started: {event.train_records} train / {event.valid_records} valid records, "
            f"{event.total_steps} steps, "
            f"{event.trainable_parameters:,} trainable of {event.total_parameters:,} parameters"
        ) + adapted
    if isinstance(event, Step):
        return (
            f"step {event.step} epoch {event.epoch:.2f} loss {event.train_loss:.4f} lr {event.learning_rate:.2e} "
            f"{event.tokens_per_second:.0f} tok/s {event.iterations_per_second:.2f} it/s "
            f"peak {human_bytes(event.peak_memory_bytes)} eta {human_duration(event.eta_seconds)}"
        ) + _rewards_text(event)
    if isinstance(event, Validation):
        return f"validation step {event.step} val_loss {event.val_loss:.4f}" + _rewards_text(event)
    if isinstance(event, DriftCheck):
        return f"drift step {event.step}: {_drift_text(event)}"
    if isinstance(event, Checkpoint):
        return f"checkpoint step {event.step}: {event.path}"
    if isinstance(event, Notice):
        return f"warning at step {event.step}: {event.message}"
    if isinstance(event, Sample):
        if event.rewards is not None:
            answers = "".join(
                f"\n  {label} ({reward:.2f}): {answer}"
                for label, answer, reward in zip(("best", "worst"), event.answers, event.rewards, strict=False)
            )
            return f"sample step {event.step}: {event.prompts[0]}{answers}"
        answers = "".join(f"\n  Q: {q}\n  A: {a}" for q, a in zip(event.prompts, event.answers, strict=True))
        return f"sample step {event.step}:{answers}"
    if isinstance(event, Finished):
        return f"finished ({event.reason}) at step {event.step}: {event.adapter_path}"
    if isinstance(event, Cancelled):
        return f"cancelled at step {event.step}; saved {event.adapter_path} (resume it to go on)"
    assert isinstance(event, Failed)
    return f"training failed: {event.reason} {event.advice}".rstrip()


def _rewards_text(event: Step | Validation) -> str:
    if event.reward is not None:
        return _grpo_text(event)
    if event.reward_margin is None:
        return ""
    return (
        f" margin {event.reward_margin:.3f} accuracy {event.reward_accuracy:.2f} "
        f"(chosen {event.chosen_reward:.3f}, rejected {event.rejected_reward:.3f})"
    )


def _grpo_text(event: Step | Validation) -> str:
    each = ", ".join(
        f"{name} {value['mean'] if isinstance(value, dict) else value:.2f}"
        for name, value in (event.rewards or {}).items()
    )
    if isinstance(event, Validation):
        return f" reward {event.reward:.3f} ({each})"
    return (
        f" reward {event.reward:.3f}±{event.reward_std:.3f} ({each}) kl {event.kl:.4f} "
        f"length {event.completion_tokens:.1f} flat groups {event.flat_groups:.0%}"
    )


def _drift_text(event: DriftCheck) -> str:
    if event.drift is None:
        return "no general answers to compare"
    text = f"{event.drift:.2f} from the base ({event.changed} of {event.prompts} general answers changed"
    return text + (f"; {event.kept} of {event.known} facts it knew kept)" if event.known else ")")


def event_from_json(data: dict) -> Event:
    cls = _BY_NAME[data["type"]]
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


class EventsFollower:
    """Reads the complete lines appended to an events.jsonl since the last read.

    A line still being written (no newline yet) waits for the next read.
    """

    def __init__(self, path) -> None:
        self.path = path
        self.offset = 0

    def new_events(self) -> list[Event]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        events = []
        for line in complete.splitlines():
            try:
                events.append(event_from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue
        return events


def read_events(path) -> list[Event]:
    """Every complete event in an events.jsonl."""
    return EventsFollower(path).new_events()
