"""MLX's memory limits for a run, and a watch on the system's swap.

On a Mac, MLX's arrays live in unified memory. The wired limit keeps up to that much of it resident
(never paged out); by default a run wires Metal's recommended working set, as mlx-lm's generate
does for large models. The cache limit bounds the freed buffers MLX keeps for reuse (MLX's default:
as much as the memory limit). Neither applies on Linux's CPU backend, where nothing is set.

A run that outgrows memory makes the system swap: steps slow to a crawl and, over SSH, the machine
may stop answering. The watch says so once, with the figure, while there is still time to cancel.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass

from lora_tui.core.units import human_bytes

GB = 1024**3
SWAP_WARNING_BYTES = 512 * 1024**2  # swap grown by this much since the run started
MAC_SWAP_CHECK_SECONDS = 10.0  # sysctl is a process; /proc/meminfo is read every step


@dataclass(frozen=True)
class MemoryLimits:
    wired_bytes: int | None  # None: not set (MLX's default)
    cache_bytes: int | None

    def to_json(self) -> dict:
        return {"wired_bytes": self.wired_bytes, "cache_bytes": self.cache_bytes}

    def describe(self) -> str:
        """ "wired 21.3 GB, cache 2.0 GB", or "" when neither is set."""
        shown = [(name, value) for name, value in (("wired", self.wired_bytes), ("cache", self.cache_bytes)) if value]
        return ", ".join(f"{name} {human_bytes(value)}" for name, value in shown)


def apply_memory_limits(wired_limit_gb: float | None, cache_limit_gb: float | None) -> MemoryLimits:
    """Set MLX's wired and cache limits (None: the default) where the backend has them; return what was set."""
    import mlx.core as mx

    if not mx.metal.is_available():
        return MemoryLimits(None, None)
    wired = recommended_working_set() if wired_limit_gb is None else int(wired_limit_gb * GB)
    if wired:
        mx.set_wired_limit(wired)
    cache = None if cache_limit_gb is None else int(cache_limit_gb * GB)
    if cache is not None:
        mx.set_cache_limit(cache)
    return MemoryLimits(wired or None, cache)


def recommended_working_set() -> int:
    import mlx.core as mx

    return int(mx.device_info().get("max_recommended_working_set_size", 0))


def swap_used_bytes() -> int | None:
    """Swap in use on this machine now, or None where it cannot be read."""
    if sys.platform == "darwin":
        return _mac_swap_used()
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo if ":" in line)
        return (int(fields["SwapTotal"].split()[0]) - int(fields["SwapFree"].split()[0])) * 1024
    except (OSError, KeyError, ValueError):
        return None


def _mac_swap_used() -> int | None:
    try:
        text = subprocess.run(["sysctl", "-n", "vm.swapusage"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    used = re.search(r"used = ([\d.]+)([KMG])", text)
    if not used:
        return None
    return int(float(used[1]) * {"K": 1024, "M": 1024**2, "G": GB}[used[2]])


class SwapWatch:
    """Tells, once, that the system started swapping during the run."""

    def __init__(self, read=swap_used_bytes, threshold: int = SWAP_WARNING_BYTES) -> None:
        self.read, self.threshold = read, threshold
        self.start = read()
        self.warned = False
        self.checked = 0.0

    def check(self) -> str | None:
        """A warning the first time swap has grown past the threshold since the run began, else None."""
        interval = MAC_SWAP_CHECK_SECONDS if sys.platform == "darwin" else 0.0
        if self.warned or self.start is None or time.monotonic() - self.checked < interval:
            return None
        self.checked = time.monotonic()
        now = self.read()
        if now is None or now - self.start < self.threshold:
            return None
        self.warned = True
        return (
            f"The system is swapping: {human_bytes(now)} of swap in use, {human_bytes(now - self.start)} more than "
            "when the run started. Steps slow down and the machine may stop answering; cancel (it saves) and "
            "resume with a smaller batch size or max sequence length, or gradient checkpointing."
        )
