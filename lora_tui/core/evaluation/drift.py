"""Drift: how far a model's answers to general prompts moved from the base model's own.

The prompts (drift_prompts.txt: facts, arithmetic, instructions) are shipped with lora-tui;
the references are the base model's greedy answers to them. drift = 1 - mean token F1
against the base's answer: 0 when every answer is the base's, 1 when none shares a word.
`lora-tui eval --drift` reports it for an adapter, and training with replay (which never
trains on these prompts) reports it at each validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.evaluation.scores import score
from lora_tui.core.files import prompt_lines

DRIFT_PROMPTS = Path(__file__).with_name("drift_prompts.txt")
DRIFT_TOKENS = 48  # per answer: long enough to see an answer change, short enough to run at every validation


def drift_prompts() -> list[str]:
    return prompt_lines(DRIFT_PROMPTS)


@dataclass(frozen=True)
class Drift:
    prompts: int  # answered by both
    drift: float | None
    changed: int  # answers that are not the base's word for word

    def to_json(self) -> dict:
        return {"prompts": self.prompts, "drift": self.drift, "changed": self.changed}


def drift_from(answers: list[str | None], base_answers: list[str | None]) -> Drift:
    pairs = [(a, b) for a, b in zip(answers, base_answers, strict=True) if a is not None and b is not None]
    scores = [score(a, b) for a, b in pairs]
    return Drift(
        prompts=len(pairs),
        drift=1 - sum(s.token_f1 for s in scores) / len(scores) if scores else None,
        changed=sum(not s.exact for s in scores),
    )
