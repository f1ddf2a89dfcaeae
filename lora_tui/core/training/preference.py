"""Preference tuning: DPO and ORPO on LoRA, with no second model in memory.

A batch of pairs is one forward pass over 2B rows: the B chosen answers, then the B
rejected ones, each after its prompt; only answer tokens count. Each row gives the
sequence log-probability of its answer.

DPO compares the policy with a reference. The reference is the model before training:
the same weights with the LoRA update still zero, so its log-probabilities are computed
once, before the first step, and kept (two numbers a pair), never a second copy of the
weights. The reward of an answer is beta x (policy - reference) log-probability. The
loss is -log sigmoid(reward margin) (`sigmoid`) or IPO's squared distance of the
length-normalised margin from 1/(2 beta) (`ipo`), plus `chosen_nll` x the chosen answers'
mean token loss (averaged per pair): without it, the answer both sides share cancels out of the DPO loss and
nothing holds it in place (answers degenerate into the preferred addition repeated).

ORPO needs no reference: the chosen answers' mean token loss plus beta (ORPO's lambda) x
-log sigmoid of the log odds ratio of the two answers' mean token probabilities. Its
rewards are beta x the answers' mean token log-probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lora_tui.core.data.records import Record
from lora_tui.core.errors import UserError
from lora_tui.core.training.batching import Batch, Example, make_batch, tokenize
from lora_tui.core.training.forward import forward

PREFERENCE_METHODS = ("dpo", "orpo")


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


PAIR_EXAMPLE = 'a pair: {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "I cannot say."}'
RECORD_EXAMPLE = (
    'a record: {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]}'
)


def check_method_fits_format(method: str, data_format: str | None, path) -> None:
    """Before a run: SFT data for a preference method (and the reverse) is refused with what the method needs."""
    if method in PREFERENCE_METHODS and data_format not in (None, "preference"):
        raise UserError(
            f"{path}: --method {method} trains on preference pairs, not {data_format} records; {PAIR_EXAMPLE}"
        )
    if method not in PREFERENCE_METHODS and data_format == "preference":
        raise UserError(f"{path}: these are preference pairs; train them with --method dpo or orpo ({RECORD_EXAMPLE}).")


def check_method_fits_data(method: str, records: list[Record], path) -> None:
    """The same, line by line, for the records a run loads."""
    wrong = next((r for r in records if r.is_preference != (method in PREFERENCE_METHODS)), None)
    if wrong is None:
        return
    if method in PREFERENCE_METHODS:
        raise UserError(f"{path}, line {wrong.line}: --method {method} trains on preference pairs; {PAIR_EXAMPLE}")
    raise UserError(
        f"{path}, line {wrong.line}: this is a preference pair; train pairs with --method dpo or orpo "
        f"({RECORD_EXAMPLE})."
    )


def tokenize_pairs(records: list[Record], tokenizer, max_seq_length: int) -> tuple[Pairs, int]:
    """Both sides of every pair; a side over max_seq_length loses tokens from the start of its prompt.

    Returns the pairs and how many were cut.
    """
    rejected_records = [
        Record(r.line, messages=(*r.prompt_messages, {"role": "assistant", "content": r.rejected})) for r in records
    ]
    chosen, _ = tokenize(records, tokenizer, 10**9)
    rejected, _ = tokenize(rejected_records, tokenizer, 10**9)
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


@dataclass(frozen=True)
class Objective:
    method: str  # dpo or orpo
    beta: float
    dpo_loss: str = "sigmoid"
    chosen_nll: float = 0.0

    def loss(self, model, inputs, targets, loss_mask, mask, reference):
        """(mean loss over the batch's pairs, pairs, STATS sums); rows: B chosen, then B rejected."""
        logps, tokens = row_logps(model, inputs, targets, loss_mask, mask)
        return self.from_logps(logps, tokens, reference)

    def from_logps(self, logps, tokens, reference):
        """The loss, the pairs and the STATS sums from each row's answer log-probability and token count."""
        import mlx.core as mx
        import mlx.nn as nn

        half = logps.shape[0] // 2
        chosen, rejected = logps[:half], logps[half:]
        chosen_tokens, rejected_tokens = tokens[:half], tokens[half:]
        real = (chosen_tokens > 0).astype(mx.float32)  # a stand-in row of a rank without pairs counts for nothing
        pairs = real.sum()
        chosen_mean = chosen / mx.maximum(chosen_tokens, 1)
        rejected_mean = rejected / mx.maximum(rejected_tokens, 1)
        # a mean over pairs like every other term, so ranks that split a batch add up to the whole batch
        nll = -(chosen_mean * real).sum() / mx.maximum(pairs, 1)
        if self.method == "orpo":
            log_odds = _log_odds(chosen_mean) - _log_odds(rejected_mean)
            pair_losses = -nn.log_sigmoid(log_odds)
            chosen_rewards, rejected_rewards = self.beta * chosen_mean, self.beta * rejected_mean
            total = nll + self.beta * (pair_losses * real).sum() / mx.maximum(pairs, 1)
        else:
            chosen_ratio, rejected_ratio = chosen - reference[:, 0], rejected - reference[:, 1]
            chosen_rewards, rejected_rewards = self.beta * chosen_ratio, self.beta * rejected_ratio
            if self.dpo_loss == "ipo":
                margin = chosen_ratio / mx.maximum(chosen_tokens, 1) - rejected_ratio / mx.maximum(rejected_tokens, 1)
                pair_losses = (margin - 1 / (2 * self.beta)) ** 2
            else:
                pair_losses = -nn.log_sigmoid(chosen_rewards - rejected_rewards)
            total = (pair_losses * real).sum() / mx.maximum(pairs, 1) + self.chosen_nll * nll
        stats = mx.stack(
            [
                (chosen_rewards * real).sum(),
                (rejected_rewards * real).sum(),
                ((chosen_rewards > rejected_rewards).astype(mx.float32) * real).sum(),
                pairs,
            ]
        )
        return total, pairs, stats


def row_logps(model, inputs, targets, loss_mask, mask):
    """Each row's summed answer log-probability, and its answer tokens."""
    import mlx.core as mx
    import mlx.nn as nn

    logits = forward(model, inputs, mask).astype(mx.float32)
    token_logps = -nn.losses.cross_entropy(logits, targets) * loss_mask
    return token_logps.sum(axis=1), loss_mask.sum(axis=1)


def _log_odds(mean_logp):
    """log(p / (1 - p)) of a mean token probability p = exp(mean_logp) < 1."""
    import mlx.core as mx

    return mean_logp - mx.log1p(-mx.exp(mx.minimum(mean_logp, -1e-6)))


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
