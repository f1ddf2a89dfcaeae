"""The forward pass training and evaluation share."""

from __future__ import annotations


def forward(model, inputs, mask, last: int | None = None):
    """Logits; with an explicit attention mask when rows are packed. With `last`, only the last `last`
    positions' logits: the vocabulary projection (the largest matmul of a small model) skips the rest."""
    if last is not None and last < inputs.shape[1] and mask is None and _plain_head(model):
        return _head(model, model.model(inputs)[:, -last:])
    if mask is None:
        logits = model(inputs)
    else:
        inner = model.model
        hidden = inner.embed_tokens(inputs)
        for layer in inner.layers:
            hidden = layer(hidden, mask, cache=None)
        logits = _head(model, inner.norm(hidden))
    return logits if last is None else logits[:, -last:]


# Families whose mlx-lm Model computes logits as the head over `model.model`'s output and nothing after
# (read in their sources: no soft-capping or scaling); the others compute all logits, then keep the last.
PLAIN_HEADS = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma3_text", "smollm3", "olmo2"})


def _plain_head(model) -> bool:
    return getattr(model, "model_type", None) in PLAIN_HEADS and "model" in model


def _head(model, hidden):
    return model.lm_head(hidden) if "lm_head" in model else model.model.embed_tokens.as_linear(hidden)


def token_losses(model, inputs, targets, loss_mask, mask):
    """Per position, the cross-entropy of its target, zero where the target is not trained. Targets narrower
    than the inputs are those of the last positions (the rest trains nothing)."""
    import mlx.core as mx
    import mlx.nn as nn

    logits = forward(model, inputs, mask, last=targets.shape[1]).astype(mx.float32)
    return nn.losses.cross_entropy(logits, targets) * loss_mask
