"""Drift: how far a model's answers to general prompts moved from the base model's own.

The prompts (drift_prompts.txt: facts, arithmetic, instructions) are shipped with lora-tui;
the references are the base model's greedy answers to them. drift = 1 - mean token F1
against the base's answer: 0 when every answer is the base's, 1 when none shares a word.
Prompts with a known answer (after a tab in the file) also count the facts the base got
right that the adapter still gets right: what fine-tuning kept of what the base knew.
`lora-tui eval --drift` reports it for an adapter, and training with replay (which never
trains on these prompts) reports it at each validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.evaluation.scores import normalized, score
from lora_tui.core.files import prompt_lines

DRIFT_PROMPTS = Path(__file__).with_name("drift_prompts.txt")
DRIFT_TOKENS = 48  # per answer: long enough to see an answer change, short enough to run at every validation


def drift_set() -> list[tuple[str, tuple[str, ...]]]:
    """Each drift prompt with what a right answer contains (any of them; none for open prompts)."""
    result = []
    for line in prompt_lines(DRIFT_PROMPTS):
        prompt, _, keys = line.partition("\t")
        result.append((prompt.strip(), tuple(key.strip() for key in keys.split("|") if key.strip())))
    return result


def drift_prompts() -> list[str]:
    return [prompt for prompt, _ in drift_set()]


def answers_right(answer: str, keys: tuple[str, ...]) -> bool:
    text = f" {normalized(answer)} "
    return any(f" {normalized(key)} " in text for key in keys)


@dataclass(frozen=True)
class Drift:
    prompts: int  # answered by both
    drift: float | None
    changed: int  # answers that are not the base's word for word
    known: int = 0  # prompts with a known answer that the base answered right
    kept: int = 0  # of those, the ones still answered right

    def to_json(self) -> dict:
        return {key: getattr(self, key) for key in ("prompts", "drift", "changed", "known", "kept")}


def drift_from(
    answers: list[str | None], base_answers: list[str | None], keys: list[tuple[str, ...]] | None = None
) -> Drift:
    keys = keys or [()] * len(answers)
    rows = [(a, b, k) for a, b, k in zip(answers, base_answers, keys, strict=True) if a is not None and b is not None]
    scores = [score(a, b) for a, b, _ in rows]
    known = [a for a, b, k in rows if k and answers_right(b, k)]
    return Drift(
        prompts=len(rows),
        drift=1 - sum(s.token_f1 for s in scores) / len(scores) if scores else None,
        changed=sum(not s.exact for s in scores),
        known=len(known),
        kept=sum(answers_right(a, k) for a, b, k in rows if k and answers_right(b, k)),
    )
