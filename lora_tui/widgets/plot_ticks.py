"""Axis ticks on whole numbers, for axes that count things (steps, records)."""

from __future__ import annotations

import math


def whole_ticks(low: float, high: float, most: int = 6) -> list[int]:
    """At most `most` evenly spaced whole numbers from low to high, on a round step (1, 2, 5, 10, 20...)."""
    low, high = math.floor(low), math.ceil(high)
    span = max(high - low, 1)
    step = next(
        size * 10**power
        for power in range(len(str(span)) + 1)
        for size in (1, 2, 5)
        if span / (size * 10**power) <= most - 1
    )
    first = math.ceil(low / step) * step
    return list(range(first, high + 1, step))
