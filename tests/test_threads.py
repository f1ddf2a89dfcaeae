"""MLX jobs on pooled worker threads (how Textual runs thread workers)."""

from concurrent.futures import ThreadPoolExecutor

import mlx.core as mx

from lora_tui.core.threads import mlx_worker_thread


def _job(value: float) -> float:
    with mlx_worker_thread():
        total = (mx.ones((4,)) * value).sum()
        mx.eval(total)
        return total.item()


def test_a_pooled_thread_runs_mlx_again_after_its_streams_were_released():
    with ThreadPoolExecutor(max_workers=1) as pool:
        results = [pool.submit(_job, value).result() for value in (1.0, 2.0, 3.0)]
    assert results == [4.0, 8.0, 12.0]
