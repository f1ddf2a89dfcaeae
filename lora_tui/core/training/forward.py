"""The forward pass training and evaluation share."""

from __future__ import annotations


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


def token_losses(model, inputs, targets, loss_mask, mask):
    """Per position, the cross-entropy of its target, zero where the target is not trained."""
    import mlx.core as mx
    import mlx.nn as nn

    logits = forward(model, inputs, mask).astype(mx.float32)
    return nn.losses.cross_entropy(logits, targets) * loss_mask
