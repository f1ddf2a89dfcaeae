"""`lora-tui eval`: is the adapter better than its base, measured on held-out records.

For each record the prompt is the conversation up to its last assistant turn and the
reference is that turn. The loss is computed as training computes it (the same chat
template, the same prompt masking, token-weighted); answers are greedy, generated in
batches, and scored against the reference. A record the base answered right (the
reference contained) and the adapter does not is a regression. Plain-text records have
no reference: they count for the loss only.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lora_tui.core.adapters.registry import AdapterInfo
from lora_tui.core.data.records import Record, dataset_files, load_records
from lora_tui.core.errors import UserError
from lora_tui.core.evaluation.drift import DRIFT_TOKENS, drift_from, drift_set
from lora_tui.core.evaluation.scores import score
from lora_tui.core.inference.generate import Generator, Turn, greedy_batch
from lora_tui.core.training.batching import Example, make_batch, tokenize
from lora_tui.core.training.forward import token_losses
from lora_tui.core.training.preference import PreferenceMetrics, pair_logps, pair_rewards, tokenize_pairs
from lora_tui.core.training.rewards import parse_rewards, score_completions

LOSS_BATCH = 8


@dataclass
class Side:
    """What one model (the base, or base + adapter) did on the records."""

    label: str
    losses: list[tuple[float, int]] = field(default_factory=list)  # per record: summed loss, reference tokens
    answers: list[str | None] = field(default_factory=list)  # None where the record has no reference
    tokens_per_second: float = 0.0
    pair_logps: np.ndarray | None = None  # preference pairs: (pairs, 2) chosen and rejected log-probabilities
    rewards: dict | None = None  # GRPO prompts: {"total": mean, "by_reward": {name: mean}} of its greedy answers

    def mean_loss(self) -> float | None:
        tokens = sum(count for _, count in self.losses)
        return sum(total for total, _ in self.losses) / tokens if tokens else None

    def summary(self, references: list[str | None]) -> dict:
        pairs = zip(self.answers, references, strict=True)
        scored = [score(a, r) for a, r in pairs if r is not None and a is not None]
        loss = self.mean_loss()
        mean = (lambda values: sum(values) / len(values)) if scored else (lambda values: None)
        return {
            "label": self.label,
            "loss": loss,
            "perplexity": math.exp(loss) if loss is not None else None,
            "exact": mean([s.exact for s in scored]),
            "contained": mean([s.contained for s in scored]),
            "token_f1": mean([s.token_f1 for s in scored]),
            "chrf": mean([s.chrf for s in scored]),
            "answered": len(scored),
            "tokens_per_second": self.tokens_per_second,
            **({"rewards": self.rewards} if self.rewards is not None else {}),
        }


@dataclass
class Evaluation:
    data: str
    records: list[Record]
    sides: list[Side]
    beta: float = 0.1  # preference pairs: DPO's beta, for the rewards
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def references(self) -> list[str | None]:
        return [r.answer if r.is_prompt else r.response if r.is_chat else None for r in self.records]

    def regressions(self) -> list[int]:
        """Records the base answered right (reference contained) and the adapter does not."""
        if len(self.sides) < 2:
            return []
        base, adapter = self.sides[0], self.sides[-1]
        return [
            index
            for index, reference in enumerate(self.references)
            if reference is not None
            and base.answers[index] is not None
            and adapter.answers[index] is not None
            and score(base.answers[index], reference).contained
            and not score(adapter.answers[index], reference).contained
        ]

    def pair_rewards(self) -> PreferenceMetrics | None:
        """On preference pairs: the adapter's rewards against the base as the reference, per held-out pair."""
        if len(self.sides) < 2 or self.sides[0].pair_logps is None:
            return None
        return pair_rewards(self.sides[-1].pair_logps, self.sides[0].pair_logps, self.beta)

    def to_json(self) -> dict:
        references, regressions = self.references, set(self.regressions())
        rows = []
        for index, record in enumerate(self.records):
            row = {"line": record.line, "reference": references[index], "regression": index in regressions}
            if record.is_chat:
                row["prompt"] = record.prompt_messages[-1]["content"] if record.prompt_messages else ""
            for side in self.sides:
                total, count = side.losses[index]
                answer = side.answers[index]
                scores = score(answer, references[index]).to_json() if None not in (answer, references[index]) else None
                row[side.label] = {"loss": total / count if count else None, "answer": answer, "scores": scores}
            rows.append(row)
        return {
            "created": self.created,
            "data": self.data,
            "summary": [side.summary(references) for side in self.sides],
            "regressions": len(regressions),
            **({"preference": rewards.to_json()} if (rewards := self.pair_rewards()) else {}),
            "records": rows,
        }


def held_out_data(info: AdapterInfo | None) -> Path:
    """The folder an adapter was trained from, whose test.jsonl (else valid.jsonl) holds records it did not train on."""
    if info is None or not info.dataset:
        raise UserError("Give --data: there is no adapter dataset to take held-out records from.")
    data = Path(info.dataset)
    if not data.is_dir():
        raise UserError(f"{info.name} was trained on one file ({data}) with no held-out split; give --data.")
    return data


def eval_records(
    data: Path, limit: int | None = None, columns: dict[str, str] | None = None
) -> tuple[Path, list[Record]]:
    """The records to evaluate on: a dataset's test split, else its valid split, else the file itself."""
    files = dataset_files(Path(data))
    data = files.get("test") or files.get("valid") or files["train"]
    records = load_records(data, columns)
    return data, records[:limit] if limit else records


def evaluate(
    model_path: Path,
    records: list[Record],
    adapters: list[tuple[str, Path | None]],
    data_name: str = "",
    max_tokens: int = 64,
    batch_size: int = 16,
    max_seq_length: int = 2048,
    mask_prompt: bool = True,
    stop: threading.Event | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
    beta: float = 0.1,
    phase: Callable[[str], None] = lambda text: None,
    rewards: list[str] = (),
) -> Evaluation:
    """Loss and greedy answers of the base model with each of `adapters` (None: the base itself).

    `progress(done, total)` is told after each batch of answers (total: answers over all the models);
    `phase(text)` what it is doing now. After `stop` it measures nothing more: what was measured is returned.
    On GRPO prompts there is no loss (no reference answer to score tokens of): each side's greedy answers
    are scored by `rewards` instead.
    """
    prompts_only = bool(records) and all(r.is_prompt for r in records)
    scoring = parse_rewards(list(rewards)) if prompts_only else []
    phase("loading the model")
    generator = Generator(model_path)
    examples, _ = tokenize([] if prompts_only else records, generator.tokenizer, max_seq_length)
    prompts = [generator.prompt_tokens(_turns(r.prompt_messages)) if r.is_chat else None for r in records]
    answered = sum(prompt is not None for prompt in prompts)
    pairs = None
    if records and all(r.is_preference for r in records):
        pairs, _ = tokenize_pairs(records, generator.tokenizer, max_seq_length)
    sides = []
    for number, (label, adapter) in enumerate(adapters):
        if stop is not None and stop.is_set():
            break
        generator.use_adapter(adapter)
        phase(f"{label}: loss on {len(examples)} records")
        losses = (
            [(0.0, 0)] * len(records) if prompts_only else record_losses(generator.model, examples, mask_prompt, stop)
        )
        side = Side(label, losses=losses)
        if stop is not None and stop.is_set():  # stopped during the loss pass: this side is not whole
            break
        if pairs is not None:
            side.pair_logps = pair_logps(generator.model, pairs, LOSS_BATCH)

        def told(done: int, offset: int = number * answered, label: str = label) -> None:
            progress(offset + done, answered * len(adapters))
            phase(f"{label}: answered {done} of {answered}")

        phase(f"{label}: answering {answered} prompts")
        side.answers, side.tokens_per_second = greedy_answers(generator, prompts, max_tokens, batch_size, stop, told)
        if scoring and None not in side.answers:
            side.rewards = reward_means(scoring, records, side.answers, generator.tokenizer)
        sides.append(side)
    return Evaluation(data_name, records, sides, beta)


def reward_means(rewards, records: list[Record], answers: list[str], tokenizer) -> dict:
    """Each reward's mean over the answers, and the weighted total's."""
    prompts = [next((m["content"] for m in reversed(r.messages) if m["role"] == "user"), "") for r in records]
    lengths = [len(tokenizer.encode(answer)) for answer in answers]
    table = score_completions(
        rewards, prompts, answers, [r.answer for r in records], lengths, [r.where for r in records]
    )
    means = {reward.name: float(np.mean(scores)) for reward, scores in zip(rewards, table, strict=True)}
    total = sum(reward.weight * means[reward.name] for reward in rewards)
    return {"total": total, "by_reward": means}


def _turns(messages) -> list[Turn]:
    return [Turn(m["role"], m["content"]) for m in messages]


def record_losses(
    model, examples: list[Example], mask_prompt: bool = True, stop: threading.Event | None = None
) -> list[tuple[float, int]]:
    """Per example, its summed cross-entropy over the tokens training learns from, and how many there are
    (after `stop`, the examples not reached yet count (0.0, 0))."""
    import mlx.core as mx

    order = sorted(range(len(examples)), key=lambda i: len(examples[i].tokens))
    results: list[tuple[float, int]] = [(0.0, 0)] * len(examples)
    for start in range(0, len(order), LOSS_BATCH):
        if stop is not None and stop.is_set():
            break
        rows = tuple((i,) for i in order[start : start + LOSS_BATCH])
        batch = make_batch(examples, rows, mask_prompt, packed=False)
        losses = token_losses(model, mx.array(batch.inputs), mx.array(batch.targets), mx.array(batch.loss_mask), None)
        sums = losses.sum(axis=1).tolist()
        for position, (index,) in enumerate(rows):
            results[index] = (sums[position], int(batch.loss_mask[position].sum()))
    return results


def greedy_answers(
    generator: Generator,
    prompts: list[list[int] | None],
    max_tokens: int,
    batch_size: int,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] = lambda done: None,
) -> tuple[list[str | None], float]:
    """Greedy answers, `batch_size` prompts at a time (1: one by one); and the tokens per second of it all."""
    answers: list[str | None] = [None] * len(prompts)
    wanted = [i for i, prompt in enumerate(prompts) if prompt is not None]
    tokens, started = 0, time.perf_counter()
    for start in range(0, len(wanted), batch_size):
        if stop is not None and stop.is_set():
            break
        chunk = wanted[start : start + batch_size]
        batch = greedy_batch(generator.model, generator.tokenizer, [prompts[i] for i in chunk], max_tokens)
        for index, answer in zip(chunk, batch, strict=True):
            answers[index] = answer.text
            tokens += answer.tokens
        progress(start + len(chunk))
    elapsed = time.perf_counter() - started
    return answers, tokens / elapsed if elapsed else 0.0


def measure_drift(
    model_path: Path, adapter: Path | None, max_tokens: int = DRIFT_TOKENS, batch_size: int = 16, stop=None
) -> dict:
    """How far the adapter's answers to the drift prompts moved from the base's own (see drift.py)."""
    generator = Generator(model_path)
    questions, keys = zip(*drift_set(), strict=True)
    prompts = [generator.prompt_tokens([Turn("user", text)]) for text in questions]
    generator.use_adapter(None)
    base, _ = greedy_answers(generator, prompts, max_tokens, batch_size, stop)
    generator.use_adapter(adapter)
    adapted, _ = greedy_answers(generator, prompts, max_tokens, batch_size, stop)
    return {
        **drift_from(adapted, base, list(keys)).to_json(),
        "examples": [{"prompt": p, "base": b, "adapter": a} for p, a, b in zip(questions, adapted, base, strict=True)],
    }
