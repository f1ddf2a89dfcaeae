"""What DPO and ORPO share: preference pairs as batches of 2B rows, and their reward metrics.

A batch of B pairs is one forward pass over its B chosen answers, then its B rejected
ones, each after its prompt; only answer tokens count. On a rank with an even number of
pairs it is trained in two halves (half the activations): the loss is a mean over pairs,
so accumulating the halves' gradients makes the same update as one pass.
"""

from __future__ import annotations

import numpy as np

from lora_tui.core.data.records import Record
from lora_tui.core.training.batching import BatchPlan, plan_epoch
from lora_tui.core.training.methods.base import Method, MicroBatch
from lora_tui.core.training.preference import PreferenceMetrics, row_logps, tokenize_pairs
from lora_tui.core.units import counted

PAIR_STATS = 4  # chosen rewards, rejected rewards, pairs ranked right, pairs
TIE = 1e-4  # a reward margin within float noise ranks nothing (at the first step the policy is the reference)


class PairMethod(Method):
    data = "pairs"
    stats_size = PAIR_STATS
    metrics_name = "preference"

    def prepare(self, train: list[Record], valid: list[Record]) -> None:
        p = self.params
        self.pairs = {}
        for split, records in (("train", train), ("valid", valid)):
            self.pairs[split], shortened = tokenize_pairs(records, self.tokenizer, p.max_seq_length)
            if shortened:
                self.notes.append(
                    f"{split}: {counted(shortened, 'pair')} over the max sequence length ({p.max_seq_length} tokens) "
                    "lost tokens from the start of the prompt."
                )
        if p.pack:
            self.notes.append("Packing does not apply to preference pairs: each pair is its own two rows.")
        if p.replay:
            self.notes.append("Replay applies to supervised training (--method sft): off for pairs.")
        self.reference = {split: self.reference_logps(split) for split in self.pairs}

    def reference_logps(self, split: str) -> np.ndarray:
        """(pairs, 2) reference log-probabilities of each pair's chosen and rejected answer (zeros: none)."""
        return np.zeros((len(self.pairs[split]), 2), dtype=np.float32)

    def train_records(self) -> int:
        return len(self.pairs["train"])

    def valid_records(self) -> int:
        return len(self.pairs["valid"])

    def plan(self, split: str, epoch: int) -> BatchPlan:
        p = self.params
        epoch = epoch if split == "train" else 0
        return plan_epoch(self.pairs[split].longer(), p.batch_size, p.seed, epoch, False, p.max_seq_length)

    def train_examples_planned(self) -> list:
        return self.pairs["train"].longer()

    def micro_batches(self, split: str, rows, whole: bool = False) -> list[MicroBatch]:
        import mlx.core as mx

        mine, stand_in = self.ranks.shard(rows)
        pairs = [row[0] for row in mine]
        batch = self.pairs[split].batch(pairs)
        if stand_in:  # a rank left without pairs trains on one that counts for nothing
            batch.loss_mask[:] = 0
            batch.tokens = 0
        reference = self.reference[split][pairs]
        count = len(pairs)
        even = self.ranks.sum([float(count % 2)])[0] == 0  # every rank must make as many passes as the others
        halves = [range(count)] if whole or not even else [range(count // 2), range(count // 2, count)]
        micro = []
        for number, half in enumerate(halves):
            rows_of_half = [*half, *(count + i for i in half)]  # its chosen rows, then its rejected rows
            arrays = (
                mx.array(batch.inputs[rows_of_half]),
                mx.array(batch.targets[rows_of_half]),
                mx.array(batch.loss_mask[rows_of_half]),
                mx.array(reference[list(half)]),
            )
            micro.append(MicroBatch(arrays, batch.tokens if number == 0 else 0))
        return micro

    def loss(self, model, inputs, targets, loss_mask, reference):
        """(mean loss over the batch's pairs, pairs, PAIR_STATS sums); rows: B chosen, then B rejected."""
        import mlx.core as mx

        logps, tokens = row_logps(model, inputs, targets, loss_mask, None)
        half = logps.shape[0] // 2
        chosen, rejected = logps[:half], logps[half:]
        chosen_tokens, rejected_tokens = tokens[:half], tokens[half:]
        real = (chosen_tokens > 0).astype(mx.float32)  # a stand-in row of a rank without pairs counts for nothing
        pairs = real.sum()
        total, chosen_rewards, rejected_rewards = self.pair_loss(
            chosen, rejected, chosen_tokens, rejected_tokens, reference, real, pairs
        )
        stats = mx.stack(
            [
                (chosen_rewards * real).sum(),
                (rejected_rewards * real).sum(),
                ((chosen_rewards > rejected_rewards + TIE).astype(mx.float32) * real).sum(),
                pairs,
            ]
        )
        return total, pairs, stats

    def pair_loss(self, chosen, rejected, chosen_tokens, rejected_tokens, reference, real, pairs):
        """(the loss, each pair's chosen and rejected reward) from the answers' summed log-probabilities."""
        raise NotImplementedError

    def metrics(self, sums: np.ndarray) -> dict:
        found = PreferenceMetrics.from_sums(sums)
        return found.to_json() if found else {}

    def reported_parameters(self) -> dict:
        return {"mask_prompt": True}  # only answer tokens count


def mean_over_pairs(values, real, pairs):
    """A mean over the real pairs, like every other term, so ranks that split a batch add up to the whole batch."""
    import mlx.core as mx

    return (values * real).sum() / mx.maximum(pairs, 1)
