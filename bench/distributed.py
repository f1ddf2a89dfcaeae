"""Data-parallel training: 1 process against 2 local ranks (mlx.launch, ring backend, loopback).

Both train the same float demo model on the same data with the same global
batch (8) through `lora-tui train` (`--ranks 2` for the second), and report
real tokens/s over all ranks from events.jsonl, leaving out the first steps
(compilation). The communication time per step is measured apart, inside a
2-rank launch: the time of one `average_gradients` over a tree the size and
shape of the LoRA gradients (plus the token-count all_sum the loop does).

    python bench/distributed.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section
from train import SHARED, WARMUP_STEPS, chat_rows, float_model, write_data

FLAGS = {**SHARED, "batch_size": 8, "epochs": 1}
COMMUNICATION_PROBE = """
import json, sys, time
import mlx.core as mx, mlx.nn as nn
from mlx.utils import tree_flatten
from lora_tui.core.models.store import load_model
from mlx_lm.tuner.utils import linear_to_lora_layers
group = mx.distributed.init()
model, _ = load_model(sys.argv[1])
model.freeze()
attention = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]
linear_to_lora_layers(model, 16, {"rank": 8, "scale": 2.0, "dropout": 0.0, "keys": attention})
grads = model.trainable_parameters()
size = sum(v.nbytes for _, v in tree_flatten(grads))
times = []
for i in range(30):
    mx.eval(grads)
    start = time.perf_counter()
    count = mx.distributed.all_sum(mx.array(100.0), group=group)
    averaged = nn.average_gradients(grads, group=group)
    mx.eval(count, averaged)
    times.append(time.perf_counter() - start)
if group.rank() == 0:
    print(json.dumps({"bytes": size, "seconds": sorted(times[5:])[len(times[5:]) // 2]}))
"""


def flags() -> list[str]:
    out = []
    for key, value in FLAGS.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out += [flag if value else f"--no-{key.replace('_', '-')}"]
        elif isinstance(value, list):
            out += [flag, ",".join(value)]
        else:
            out += [flag, str(value)]
    return out


def train(model: Path, data: Path, home: Path, name: str, *extra: str) -> dict:
    env = {**os.environ, "LORA_TUI_HOME": str(home)}
    command = [
        sys.executable,
        "-m",
        "lora_tui",
        "train",
        "--model",
        str(model),
        "--data",
        str(data),
        "--name",
        name,
        *flags(),
        *extra,
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    events = [
        json.loads(line) for line in (home / "data" / "adapters" / name / "events.jsonl").read_text().splitlines()
    ]
    steps = [e for e in events if e["type"] == "step"][WARMUP_STEPS:]
    seconds = sum(1 / s["iterations_per_second"] for s in steps)
    tokens = sum(s["tokens_per_second"] / s["iterations_per_second"] for s in steps)
    return {
        "tokens_per_second": tokens / seconds,
        "seconds_per_step": seconds / len(steps),
        "wall": wall,
        "steps": len(steps) + WARMUP_STEPS,
    }


def communication(model: Path) -> dict:
    command = [
        sys.executable,
        "-c",
        "from mlx._distributed_utils.launch import main; main()",
        "--hosts",
        "127.0.0.1",
        "-n",
        "2",
        "--backend",
        "ring",
        "--python",
        sys.executable,
        "--",
        "-c",
        COMMUNICATION_PROBE,
        str(model),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(next(line for line in output.splitlines() if line.startswith("{")))


def main() -> None:
    from lora_tui.core.locations import Locations

    locations = Locations.from_environment().ensure()
    model = float_model(locations.cache_dir / "bench")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data = write_data(scratch / "data", chat_rows(96, 20, 120, seed=3))
        one = train(model, data, scratch / "home", "one")
        two = train(model, data, scratch / "home", "two", "--ranks", "2")
    probe = communication(model)
    ratio = two["tokens_per_second"] / one["tokens_per_second"]
    body = f"""
`python bench/distributed.py` (`make bench`): SmolLM2-135M-Instruct dequantized to float, LoRA rank 8 on q/k/v/o of
16 layers, global batch 8, max sequence length 512, {one["steps"]} steps; tokens/s over all ranks, steps
1-{WARMUP_STEPS} left out. Two ranks run on this one machine through `mlx.launch --backend ring` over loopback.

| processes | real tokens/s (all ranks) | s/step | wall time (incl. start) | ratio |
|---|---|---|---|---|
| 1 | {one["tokens_per_second"]:.0f} | {one["seconds_per_step"]:.2f} | {one["wall"]:.0f} s | 1.00x |
| 2 local ranks | {two["tokens_per_second"]:.0f} | {two["seconds_per_step"]:.2f} | {two["wall"]:.0f} s | {ratio:.2f}x |

Communication per step (2 ranks, loopback): {probe["seconds"] * 1000:.1f} ms to average
{probe["bytes"] / 1e6:.2f} MB of LoRA gradients in one all-reduce, plus the token count.

Why no gain here: this machine has {os.cpu_count()} cores, and one MLX process already keeps them busy with
multithreaded BLAS, so two ranks split the same cores (`--ranks` gives each rank's BLAS its share of them) and add
the all-reduce and a second process's overheads. Data parallelism pays when each rank has its own machine (or GPU);
the number that carries over is the communication cost above against the step time.
"""
    write_section("Distributed training: 1 process vs 2 ranks", body)


if __name__ == "__main__":
    main()
