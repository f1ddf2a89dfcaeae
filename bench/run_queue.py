"""The queue's cost between runs: 4 short runs through `lora-tui queue run` (each its own process), the same 4 as
a sweep in one process (`train --sweep`), and one process training as many steps, on the demo model, in one run.

    python bench/run_queue.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section


def lora_tui(home: Path, *args: str) -> float:
    """Seconds one `lora-tui` command takes, in its own home folder."""
    env = {**os.environ, "LORA_TUI_HOME": str(home)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lora_tui", *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model
    from lora_tui.core.models.store import load_model

    locations = Locations.from_environment().ensure()
    model = ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    started = time.perf_counter()
    load_model(model)
    load_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data = scratch / "data.jsonl"
        rows = [
            {
                "messages": [
                    {"role": "user", "content": f"What is {i}+{i}?"},
                    {"role": "assistant", "content": f"{2 * i}."},
                ]
            }
            for i in range(16)
        ]
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
        common = ["--model", str(model), "--data", str(data), "--batch-size", "4", "--max-seq-length", "48"]
        rates = ",".join(f"{1e-4 * (i + 1):g}" for i in range(args.runs))
        long = lora_tui(scratch / "long", "train", *common, "--name", "long", "--epochs", str(args.runs))
        sweep = lora_tui(
            scratch / "sweep", "train", *common, "--name", "s", "--epochs", "1", "--sweep", f"learning-rate={rates}"
        )
        queued = scratch / "queue"
        lora_tui(
            queued, "train", *common, "--name", "q", "--epochs", "1", "--sweep", f"learning-rate={rates}", "--queue"
        )
        queue = lora_tui(queued, "queue", "run")
    steps = 4 * args.runs
    per_run_queue = (queue - long) / args.runs
    per_run_sweep = (sweep - long) / args.runs
    body = f"""
`python bench/run_queue.py` (`make bench`): {model.name}, {steps} training steps in all (batch 4, 48 tokens), as one
run of {args.runs} epochs, as {args.runs} one-epoch runs of a sweep in one process, and as the same {args.runs}
runs through the queue (each its own `lora-tui train`). Loading the model alone takes {load_seconds:.1f} s.

| how | wall time | per run beyond the one long run |
|---|---|---|
| one run, {steps} steps | {long:.1f} s | - |
| `train --sweep`, {args.runs} runs in one process | {sweep:.1f} s | {per_run_sweep:+.1f} s |
| `queue run`, {args.runs} runs each its own process | {queue:.1f} s | {per_run_queue:+.1f} s |

Runs of one base in one process do not reuse the loaded model: each run loads it again (each builds its own
LoRA layers on a fresh copy), but a reload there is cheap (the weights are in the page cache, the imports done).
Through the queue each run also pays a new interpreter and its imports (what the first load above includes),
the data check and its first evaluation again; a few seconds a run, small next to an overnight run's epochs.
"""
    write_section("Queue and sweeps (bench/run_queue.py)", body)


if __name__ == "__main__":
    main()
