"""DPO on LoRA, with no second model in memory.

The reference is the model before training: the same weights with the LoRA update still
zero, so its log-probabilities are computed once, before the first step, and kept (two
numbers a pair). The reward of an answer is beta x (policy - reference) log-probability.
The loss is -log sigmoid(reward margin) (`sigmoid`) or IPO's squared distance of the
length-normalised margin from 1/(2 beta) (`ipo`), plus `chosen_nll` x the chosen answers'
mean token loss (averaged per pair): without it, the answer both sides share cancels out
of the DPO loss and nothing holds it in place (answers degenerate into the preferred
addition repeated).
"""

from __future__ import annotations

import numpy as np

from lora_tui.core.training.methods.pairs import PairMethod, mean_over_pairs
from lora_tui.core.training.preference import pair_logps


class DirectPreference(PairMethod):
    name = "dpo"

    def reference_logps(self, split: str) -> np.ndarray:
        # the LoRA update is still zero (or the starting adapter's): this is the reference model
        return pair_logps(self.model, self.pairs[split], self.params.batch_size)

    def pair_loss(self, chosen, rejected, chosen_tokens, rejected_tokens, reference, real, pairs):
        import mlx.core as mx
        import mlx.nn as nn

        beta = self.params.beta
        chosen_ratio, rejected_ratio = chosen - reference[:, 0], rejected - reference[:, 1]
        chosen_rewards, rejected_rewards = beta * chosen_ratio, beta * rejected_ratio
        if self.params.dpo_loss == "ipo":
            margin = chosen_ratio / mx.maximum(chosen_tokens, 1) - rejected_ratio / mx.maximum(rejected_tokens, 1)
            pair_losses = (margin - 1 / (2 * beta)) ** 2
        else:
            pair_losses = -nn.log_sigmoid(chosen_rewards - rejected_rewards)
        nll = mean_over_pairs(-chosen / mx.maximum(chosen_tokens, 1), real, pairs)
        total = mean_over_pairs(pair_losses, real, pairs) + self.params.chosen_nll * nll
        return total, chosen_rewards, rejected_rewards
