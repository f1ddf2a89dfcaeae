"""Inside a rank of a data-parallel run, with MLX's own distributed runtime.

Every rank runs the same loop on its own rows of each global batch; gradients
are combined with `mx.distributed.all_sum`, weighted by each rank's share of
the batch's target tokens, so the update equals the one-process update on the
whole batch. Only rank 0 writes files and reports progress. A single process
is rank 0 of 1.
"""

from __future__ import annotations

import json

from lora_tui.core.errors import UserError


def check_batch_split(batch_size: int, ranks: int) -> None:
    if batch_size % ranks:
        raise UserError(
            f"The batch size ({batch_size}) is the global batch and must split evenly across "
            f"{ranks} ranks; use a multiple of {ranks}."
        )


class Ranks:
    """This process's place in the run; a single process is rank 0 of 1."""

    def __init__(self) -> None:
        import mlx.core as mx

        self.group = mx.distributed.init()
        self.rank = self.group.rank()
        self.size = self.group.size()

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def shard(self, rows: list[int]) -> tuple[list[int], bool]:
        """This rank's contiguous share of a batch's rows, and whether it is empty (then a stand-in row is used)."""
        if self.size == 1:
            return rows, False
        per_rank = -(-len(rows) // self.size)
        mine = rows[self.rank * per_rank : (self.rank + 1) * per_rank]
        return (mine, False) if mine else (rows[:1], True)

    def sum(self, values: list[float]):
        """Element-wise sum of `values` over all ranks (a list of floats back)."""
        import mlx.core as mx

        if self.size == 1:
            return list(values)
        total = mx.distributed.all_sum(mx.array(values, dtype=mx.float32), group=self.group)
        return total.tolist()

    def share_bytes(self, data: bytes | None) -> bytes:
        """Rank 0's bytes, on every rank (the others pass None)."""
        import mlx.core as mx
        import numpy as np

        if self.size == 1:
            return data or b""
        length = int(self.sum([float(len(data)) if self.is_writer else 0.0])[0])
        buffer = np.frombuffer(data, dtype=np.uint8) if self.is_writer else np.zeros(length, dtype=np.uint8)
        shared = mx.distributed.all_sum(mx.array(buffer.astype(np.int32)), group=self.group)
        return np.array(shared).astype(np.uint8).tobytes()

    def check_versions(self, versions: dict[str, str]) -> None:
        """Refuse to train when ranks run different versions of mlx, mlx-lm or lora-tui."""
        import mlx.core as mx

        if self.size == 1:
            return
        width = 512
        own = list(json.dumps(versions, sort_keys=True).encode().ljust(width)[:width])
        rows = mx.distributed.all_gather(mx.array([own], dtype=mx.int32), group=self.group).tolist()
        table = [json.loads(bytes(row).decode()) for row in rows]
        mismatched = sorted(name for name in versions if len({row.get(name) for row in table}) > 1)
        if mismatched:
            detail = "; ".join(
                f"rank {rank}: " + ", ".join(f"{name} {row.get(name)}" for name in mismatched)
                for rank, row in enumerate(table)
            )
            raise UserError(f"The hosts run different versions ({detail}). Install the same versions on every host.")


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("mlx", "mlx-lm", "lora-tui"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found
