"""MLX in worker threads."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def mlx_worker_thread() -> Iterator[None]:
    """Wrap the body of a worker thread that may run MLX.

    MLX keeps per-thread streams; a process that exits while a finished
    worker's streams are still alive can abort ("terminate called without an
    active exception", ml-explore/mlx#3126). Waiting for their work and
    destroying them when the thread's job ends lets the app quit cleanly.
    """
    mx = sys.modules.get("mlx.core")
    if mx is not None:
        # Worker threads come from a pool: this one may have run an earlier job whose
        # streams were destroyed below, default stream included. Give it a fresh one.
        mx.set_default_stream(mx.new_stream(mx.default_device()))
    try:
        yield
    finally:
        mx = sys.modules.get("mlx.core")  # a worker that never touched MLX has nothing to release
        if mx is not None and hasattr(mx, "clear_streams"):
            mx.synchronize()
            mx.clear_streams()
