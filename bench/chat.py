"""Generation speed: `lora-tui chat` against `mlx_lm generate`.

Same model (the demo model), adapter (trained here for a few steps), prompt,
greedy sampling and max tokens. Each run is a fresh process for both tools;
runs alternate, and the medians are reported. Tokens/s is decode speed; time
to first token is prompt processing plus the first token (for mlx-lm: prompt
tokens / its prompt tokens-per-second).

    python bench/chat.py [--runs N] [--max-tokens N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

PROMPT = "Write a short story about a robot who learns to paint."


def make_adapter(model: Path, root: Path) -> Path:
    from lora_tui.core.training.job import TrainingJob
    from lora_tui.core.training.loop import run_training
    from lora_tui.core.training.params import build_params

    data = root / "data"
    data.mkdir()
    row = {"messages": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello there!"}]}
    (data / "train.jsonl").write_text((json.dumps(row) + "\n") * 8)
    adapter = root / "data" / "adapters" / "bench"  # where LORA_TUI_HOME=root looks
    outcome = run_training(TrainingJob(model, data, adapter, build_params({"epochs": 1, "max_seq_length": 128})))
    assert outcome.type == "finished", outcome
    return adapter


def run_ours(model: Path, adapter: Path, max_tokens: int) -> tuple[float, float, str, float]:
    env = {**os.environ, "LORA_TUI_HOME": str(adapter.parent.parent.parent)}
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lora_tui",
            "chat",
            "--model",
            str(model),
            "--adapter",
            adapter.name,
            "--temp",
            "0",
            "--max-tokens",
            str(max_tokens),
            "--prompt",
            PROMPT,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode:
        raise SystemExit(result.stderr)
    match = re.search(r"\[(\d+) tokens, ([\d.]+) tok/s, first token ([\d.]+) s\]", result.stderr)
    return float(match.group(2)), float(match.group(3)), result.stdout.strip(), time.perf_counter() - started


def run_mlx_lm(model: Path, adapter: Path, max_tokens: int) -> tuple[float, float, str, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlx_lm",
            "generate",
            "--model",
            str(model),
            "--adapter-path",
            str(adapter),
            "--temp",
            "0",
            "--max-tokens",
            str(max_tokens),
            "--prompt",
            PROMPT,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    prompt = re.search(r"Prompt: (\d+) tokens, ([\d.]+) tokens-per-sec", result.stdout)
    generation = re.search(r"Generation: (\d+) tokens, ([\d.]+) tokens-per-sec", result.stdout)
    text = result.stdout.split("==========")[1].strip() if "==========" in result.stdout else ""
    seconds = time.perf_counter() - started
    return float(generation.group(2)), int(prompt.group(1)) / float(prompt.group(2)), text, seconds


CPU_NOTE = """
On MLX's CPU backend lora-tui expands the 4-bit weights to float32 when it loads the model (the CPU has no fast
quantized or half-precision kernels); mlx-lm runs them quantized. Same weights, other arithmetic: greedy texts can
part after some tokens. The whole process includes loading (and for lora-tui, expanding) the model.
"""


def main() -> None:
    import mlx.core as mx

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model

    locations = Locations.from_environment().ensure()
    model = ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    with tempfile.TemporaryDirectory() as scratch:
        adapter = make_adapter(model, Path(scratch))
        ours, theirs = [], []
        for _ in range(args.runs):
            ours.append(run_ours(model, adapter, args.max_tokens))
            theirs.append(run_mlx_lm(model, adapter, args.max_tokens))
    same_text = ours[0][2] == theirs[0][2]
    tps = statistics.median(r[0] for r in ours), statistics.median(r[0] for r in theirs)
    ttft = statistics.median(r[1] for r in ours), statistics.median(r[1] for r in theirs)
    wall = statistics.median(r[3] for r in ours), statistics.median(r[3] for r in theirs)
    body = f"""
`python bench/chat.py` (`make bench`): {model.name} (4-bit) + a LoRA adapter, greedy, max {args.max_tokens} tokens,
prompt "{PROMPT}"; {args.runs} fresh processes each, alternating; medians.
Same text from both: **{"yes" if same_text else "no"}**.
{CPU_NOTE if mx.default_device() == mx.cpu else ""}
| tool | decode tokens/s | time to first token | whole process | tokens/s ratio |
|---|---|---|---|---|
| `lora-tui chat` | {tps[0]:.1f} | {ttft[0]:.2f} s | {wall[0]:.1f} s | {tps[0] / tps[1]:.2f}x |
| `mlx_lm generate` | {tps[1]:.1f} | {ttft[1]:.2f} s | {wall[1]:.1f} s | 1.00x |
"""
    write_section("Generation (bench/chat.py)", body)


if __name__ == "__main__":
    main()
