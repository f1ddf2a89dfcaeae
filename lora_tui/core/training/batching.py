"""From records to training batches: tokenize, plan each epoch, pad or pack.

Tokenization matches `tokens.TokenCounter` (the budget shown is what trains):
conversations through the chat template, plain text with EOS.

Unpacked: records sorted by length are cut into batches (little padding), and
the batches are shuffled per epoch. Packed: records are placed into rows of
`max_seq_length` tokens (first-fit decreasing); each token attends only to
earlier tokens of its own record (a block-diagonal causal mask), and no loss
is taken across a record boundary. RoPE depends only on relative positions, so
a packed record computes exactly what it would alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lora_tui.core.data.masks import mask_record
from lora_tui.core.data.records import Record

PAD_MULTIPLE = 32  # pad lengths to a multiple of this: few distinct shapes to compile


@dataclass(frozen=True)
class Example:
    tokens: tuple[int, ...]
    prompt_length: int  # tokens before the first trained one (0 for plain text)
    spans: tuple[tuple[int, int], ...] | None = None  # the trained [start, end) runs; None: all from prompt_length

    def trained_spans(self) -> tuple[tuple[int, int], ...]:
        return self.spans if self.spans is not None else ((self.prompt_length, len(self.tokens)),)


@dataclass(frozen=True)
class BatchPlan:
    """Which examples go in each row of each batch."""

    rows: tuple[tuple[tuple[int, ...], ...], ...]  # batches -> rows -> example indices


def tokenize(
    records: list[Record], tokenizer, max_seq_length: int, last_turn_only: bool = False
) -> tuple[list[Example], int]:
    """Examples (every assistant turn trained; see data/masks.py), and how many records were truncated to
    max_seq_length. `last_turn_only`: a preference pair's earlier turns are its prompt."""
    examples, truncated = [], 0
    for record in records:
        masked = mask_record(tokenizer, record, last_turn_only)
        tokens, spans = masked.tokens, masked.spans
        if len(tokens) > max_seq_length:
            truncated += 1
            tokens = tokens[:max_seq_length]
            spans = tuple((start, min(end, max_seq_length)) for start, end in spans if start < max_seq_length)
        examples.append(Example(tokens, min(masked.prompt_length, len(tokens)), spans))
    return examples, truncated


def plan_epoch(
    examples: list[Example], batch_size: int, seed: int, epoch: int, pack: bool, max_seq_length: int
) -> BatchPlan:
    rng = np.random.default_rng([seed, epoch])
    if pack:
        lengths = [len(e.tokens) for e in examples]
        # Rows as wide as the longest record's padded row (attention costs the square of the row length),
        # filled up to that width: the positions are computed anyway.
        rows = pack_rows(lengths, min(max_seq_length, padded_length(max(lengths, default=1))), rng)
    else:
        order = sorted(range(len(examples)), key=lambda i: len(examples[i].tokens))
        rows = [(i,) for i in order]
        batches = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
        return BatchPlan(tuple(tuple(batches[i]) for i in rng.permutation(len(batches))))
    rows = [rows[i] for i in rng.permutation(len(rows))]
    return BatchPlan(tuple(tuple(rows[start : start + batch_size]) for start in range(0, len(rows), batch_size)))


def longest_first(plan: BatchPlan, examples: list[Example]) -> BatchPlan:
    """The plan with its heaviest batch (rows x widest row) first: where a run peaks in memory."""
    if not plan.rows:
        return plan

    def weight(batch) -> int:
        return len(batch) * max(sum(len(examples[i].tokens) for i in row) for row in batch)

    heaviest = max(range(len(plan.rows)), key=lambda b: weight(plan.rows[b]))
    return BatchPlan((plan.rows[heaviest], *plan.rows[:heaviest], *plan.rows[heaviest + 1 :]))


def padded_length(tokens: int) -> int:
    """The row a sequence of this many tokens is padded to: inputs (all but the last token) fill whole
    multiples of PAD_MULTIPLE."""
    return PAD_MULTIPLE * max(1, -(-(tokens - 1) // PAD_MULTIPLE)) + 1


def pack_rows(lengths: list[int], capacity: int, rng) -> list[tuple[int, ...]]:
    """First-fit decreasing; ties in length are broken by a seeded shuffle."""
    shuffled = rng.permutation(len(lengths))
    order = sorted(shuffled, key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    space: list[int] = []
    for index in order:
        for row, free in enumerate(space):
            if lengths[index] <= free:
                rows[row].append(int(index))
                space[row] -= lengths[index]
                break
        else:
            rows.append([int(index)])
            space.append(capacity - lengths[index])
    return [tuple(row) for row in rows]


@dataclass
class Batch:
    inputs: np.ndarray  # (B, L) token ids
    targets: np.ndarray  # (B, L) next token ids
    loss_mask: np.ndarray  # (B, L) 1.0 where a target is trained
    segments: np.ndarray | None  # (B, L) record index within its row, -1 for padding; None if unpacked
    tokens: int  # real (not padding) tokens in the batch

    def attention_mask(self):
        """(B, 1, L, L) boolean mask for packed rows: causal, and within one record."""
        if self.segments is None:
            return None
        length = self.segments.shape[1]
        causal = np.tril(np.ones((length, length), dtype=bool))
        same = self.segments[:, :, None] == self.segments[:, None, :]
        return (same & causal)[:, None, :, :]


def make_batch(examples: list[Example], rows: tuple[tuple[int, ...], ...], mask_prompt: bool, packed: bool) -> Batch:
    row_lengths = [sum(len(examples[i].tokens) for i in row) for row in rows]
    width = padded_length(max(row_lengths))
    sequence = np.zeros((len(rows), width), dtype=np.int32)
    segment = np.full((len(rows), width), -1, dtype=np.int32)
    trained = np.zeros((len(rows), width), dtype=bool)  # whether token t is a trained target
    for r, row in enumerate(rows):
        cursor = 0
        for s, index in enumerate(row):
            example = examples[index]
            end = cursor + len(example.tokens)
            sequence[r, cursor:end] = example.tokens
            segment[r, cursor:end] = s
            spans = example.trained_spans() if mask_prompt else ((0, len(example.tokens)),)
            for first, last in spans:
                trained[r, max(cursor + first, cursor + 1) : cursor + last] = True
            cursor = end
    # Position t predicts token t+1: trained if t+1 is trained and in the same record.
    loss_mask = trained[:, 1:] & (segment[:, 1:] == segment[:, :-1])
    return Batch(
        inputs=sequence[:, :-1],
        targets=sequence[:, 1:],
        loss_mask=loss_mask.astype(np.float32),
        segments=segment[:, :-1] if packed else None,
        tokens=int(sum(row_lengths)),
    )
