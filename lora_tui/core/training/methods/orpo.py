"""ORPO: no reference at all.

The loss is the chosen answers' mean token loss plus beta (ORPO's lambda) x -log sigmoid
of the log odds ratio of the two answers' mean token probabilities. Its rewards are
beta x the answers' mean token log-probabilities.
"""

from __future__ import annotations

from lora_tui.core.training.methods.pairs import PairMethod, mean_over_pairs


class OddsRatioPreference(PairMethod):
    name = "orpo"

    def pair_loss(self, chosen, rejected, chosen_tokens, rejected_tokens, reference, real, pairs):
        import mlx.core as mx
        import mlx.nn as nn

        beta = self.params.beta
        chosen_mean = chosen / mx.maximum(chosen_tokens, 1)
        rejected_mean = rejected / mx.maximum(rejected_tokens, 1)
        pair_losses = -nn.log_sigmoid(log_odds(chosen_mean) - log_odds(rejected_mean))
        total = mean_over_pairs(-chosen_mean, real, pairs) + beta * mean_over_pairs(pair_losses, real, pairs)
        return total, beta * chosen_mean, beta * rejected_mean


def log_odds(mean_logp):
    """log(p / (1 - p)) of a mean token probability p = exp(mean_logp) < 1."""
    import mlx.core as mx

    return mean_logp - mx.log1p(-mx.exp(mx.minimum(mean_logp, -1e-6)))
