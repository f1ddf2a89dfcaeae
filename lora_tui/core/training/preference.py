"""Preference pairs: their tokens, batches, log-probabilities and reward metrics (methods/dpo.py, orpo.py).

A batch of pairs is one forward pass over 2B rows: the B chosen answers, then the B
rejected ones, each after its prompt; only answer tokens count. Each row gives the
sequence log-probability of its answer.

DPO's reference log-probabilities are the model before training: the same weights with the
LoRA update still zero, computed once, before the first step (two numbers a pair).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lora_tui.core.data.records import Record
from lora_tui.core.training.batching import Batch, Example, make_batch, tokenize
from lora_tui.core.training.forward import token_losses


@dataclass(frozen=True)
class Pairs:
    chosen: list[Example]
    rejected: list[Example]

    def __len__(self) -> int:
        return len(self.chosen)

    def longer(self) -> list[Example]:
        """Each pair's longer side: what batching plans by."""
        return [max(c, r, key=lambda e: len(e.tokens)) for c, r in zip(self.chosen, self.rejected, strict=True)]

    def batch(self, pair_indices: list[int]) -> Batch:
        """The chosen rows, then the rejected rows, of these pairs."""
        examples = self.chosen + self.rejected
        rows = tuple((i,) for i in pair_indices) + tuple((len(self) + i,) for i in pair_indices)
        return make_batch(examples, rows, mask_prompt=True, packed=False)


def tokenize_pairs(records: list[Record], tokenizer, max_seq_length: int) -> tuple[Pairs, int]:
    """Both sides of every pair; a side over max_seq_length loses tokens from the start of its prompt.

    Returns the pairs and how many were cut.
    """
    rejected_records = [
        Record(r.line, messages=(*r.prompt_messages, {"role": "assistant", "content": r.rejected})) for r in records
    ]
    chosen, _ = tokenize(records, tokenizer, 10**9, last_turn_only=True)
    rejected, _ = tokenize(rejected_records, tokenizer, 10**9, last_turn_only=True)
    cut = [_fit(c, max_seq_length) for c in chosen], [_fit(r, max_seq_length) for r in rejected]
    shortened = sum(a != c or b != r for a, b, c, r in zip(*cut, chosen, rejected, strict=True))
    return Pairs(*cut), shortened


def _fit(example: Example, max_seq_length: int) -> Example:
    """Drop prompt tokens from the start (keeping the answer whole) until it fits; an answer longer than
    the limit alone keeps its beginning."""
    excess = len(example.tokens) - max_seq_length
    if excess <= 0:
        return example
    prompt_cut = min(excess, example.prompt_length)
    tokens = example.tokens[prompt_cut:][:max_seq_length]
    return Example(tokens, example.prompt_length - prompt_cut)


def sequence_logps(model, batch: Batch):
    """Per row of a batch: the summed log-probability of its answer tokens, and how many there are."""
    import mlx.core as mx

    return row_logps(model, mx.array(batch.inputs), mx.array(batch.targets), mx.array(batch.loss_mask), None)


def pair_logps(model, pairs: Pairs, batch_size: int) -> np.ndarray:
    """(pairs, 2): each pair's chosen and rejected log-probability under `model` as it is now (before training:
    DPO's reference)."""
    import mlx.core as mx

    was_training = model.training
    model.eval()
    result = np.zeros((len(pairs), 2), dtype=np.float32)
    longer = pairs.longer()
    order = sorted(range(len(pairs)), key=lambda i: len(longer[i].tokens))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        logps, _ = sequence_logps(model, pairs.batch(chunk))
        mx.eval(logps)
        values = np.array(logps)
        result[chunk, 0], result[chunk, 1] = values[: len(chunk)], values[len(chunk) :]
    model.train(was_training)
    return result


def row_logps(model, inputs, targets, loss_mask, mask):
    """Each row's summed answer log-probability, and its answer tokens."""
    token_logps = -token_losses(model, inputs, targets, loss_mask, mask)
    return token_logps.sum(axis=1), loss_mask.sum(axis=1)


@dataclass(frozen=True)
class PreferenceMetrics:
    chosen_reward: float
    rejected_reward: float
    reward_margin: float
    reward_accuracy: float

    @classmethod
    def from_sums(cls, sums) -> PreferenceMetrics | None:
        chosen, rejected, right, pairs = (float(v) for v in sums)
        if pairs == 0:
            return None
        return cls(chosen / pairs, rejected / pairs, (chosen - rejected) / pairs, right / pairs)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def pair_rewards(policy: np.ndarray, reference: np.ndarray, beta: float) -> PreferenceMetrics | None:
    """DPO's rewards of pairs from (pairs, 2) chosen and rejected log-probabilities of a policy and its reference."""
    rewards = beta * (policy - reference)
    right = (rewards[:, 0] > rewards[:, 1]).sum()
    return PreferenceMetrics.from_sums([rewards[:, 0].sum(), rewards[:, 1].sum(), right, len(rewards)])
