"""The forward pass training and evaluation share, and the supervised loss."""

from __future__ import annotations

STATS = (
    4  # what a loss sums over its batch besides the loss: chosen rewards, rejected rewards, pairs ranked right, pairs
)


def forward(model, inputs, mask):
    """Logits; with an explicit attention mask when rows are packed."""
    if mask is None:
        return model(inputs)
    inner = model.model
    hidden = inner.embed_tokens(inputs)
    for layer in inner.layers:
        hidden = layer(hidden, mask, cache=None)
    hidden = inner.norm(hidden)
    return model.lm_head(hidden) if "lm_head" in model else inner.embed_tokens.as_linear(hidden)


def loss_function(model, inputs, targets, loss_mask, mask):
    import mlx.core as mx
    import mlx.nn as nn

    logits = forward(model, inputs, mask).astype(mx.float32)
    losses = nn.losses.cross_entropy(logits, targets) * loss_mask
    count = loss_mask.sum()
    return losses.sum() / mx.maximum(count, 1), count


def sft_loss(model, inputs, targets, loss_mask, mask, reference=None):
    """The supervised loss in the shape every objective's loss has: (loss, count, STATS sums, all zero here)."""
    import mlx.core as mx

    loss, count = loss_function(model, inputs, targets, loss_mask, mask)
    return loss, count, mx.zeros((STATS,))
