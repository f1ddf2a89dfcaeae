"""Serving speed: `lora-tui serve` against `mlx_lm server`, 1 and 4 streams at once.

Both serve the demo model with the same adapter (trained here for a few steps) on
127.0.0.1 and get the same streamed chat requests (greedy, the end-of-turn token
banned with logit_bias so every answer is the full length). For each level of
concurrency the streams start together; time to first token is from sending the
request to its first text, decode tokens/s is per stream after its first token,
and total tokens/s is all streams' tokens over the wall time of the round.
Rounds alternate between the servers; medians are reported.

    python bench/serve.py [--rounds N] [--max-tokens N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat import CPU_NOTE, make_adapter
from report import write_section

PROMPT = "Write a short story about a robot who learns to paint."
LEVELS = (1, 4)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_ours(model: Path, adapter: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "LORA_TUI_HOME": str(adapter.parent.parent.parent)}
    command = ["-m", "lora_tui", "serve", "--model", str(model), "--adapter", adapter.name, "--port", str(port)]
    return subprocess.Popen([sys.executable, *command], env=env, stderr=subprocess.DEVNULL)


def start_mlx_lm(model: Path, adapter: Path, port: int) -> subprocess.Popen:
    command = ["-m", "mlx_lm", "server", "--model", str(model), "--adapter-path", str(adapter), "--port", str(port)]
    return subprocess.Popen([sys.executable, *command], stderr=subprocess.DEVNULL)


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not come up")


def one_stream(url: str, model: str, max_tokens: int, eos: int) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": True,
        "logit_bias": {str(eos): -100},
    }
    sent = time.perf_counter()
    first = last = None
    pieces = 0
    with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=600) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                last = time.perf_counter()
                first = first or last
                pieces += 1
    return {"ttft": first - sent, "decode": (pieces - 1) / (last - first), "pieces": pieces, "end": last}


def round_of(url: str, model: str, streams: int, max_tokens: int, eos: int) -> dict:
    results: list[dict] = [{}] * streams
    started = time.perf_counter()

    def run(index: int) -> None:
        results[index] = one_stream(url, model, max_tokens, eos)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = max(r["end"] for r in results) - started
    return {
        "ttft": statistics.mean(r["ttft"] for r in results),
        "decode": statistics.mean(r["decode"] for r in results),
        "total": sum(r["pieces"] for r in results) / wall,
        "pieces": min(r["pieces"] for r in results),
    }


def main() -> None:
    import mlx.core as mx

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model
    from lora_tui.core.models.store import load_model

    locations = Locations.from_environment().ensure()
    model = ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    eos = load_model(model)[1].eos_token_id
    results: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        adapter = make_adapter(model, Path(scratch))
        ports = {"lora-tui serve": free_port(), "mlx_lm server": free_port()}
        servers = {
            "lora-tui serve": (start_ours(model, adapter, ports["lora-tui serve"]), adapter.name),
            "mlx_lm server": (start_mlx_lm(model, adapter, ports["mlx_lm server"]), str(model)),
        }
        try:
            urls = {name: f"http://127.0.0.1:{ports[name]}/v1" for name in servers}
            for name, (process, _) in servers.items():
                wait_ready(urls[name], process)
                round_of(urls[name], servers[name][1], 1, 8, eos)  # warm up
            for _ in range(args.rounds):
                for streams in LEVELS:
                    for name, (_, served_model) in servers.items():
                        outcome = round_of(urls[name], served_model, streams, args.max_tokens, eos)
                        results.setdefault((name, streams), []).append(outcome)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=60)
    write_section("Serving (bench/serve.py)", report(model.name, args, results, mx.default_device() == mx.cpu))


def report(model_name: str, args, results: dict, on_cpu: bool) -> str:
    def median(name: str, streams: int, key: str) -> float:
        return statistics.median(r[key] for r in results[(name, streams)])

    rows = []
    for streams in LEVELS:
        for name in ("lora-tui serve", "mlx_lm server"):
            ttft, decode = median(name, streams, "ttft"), median(name, streams, "decode")
            total, pieces = median(name, streams, "total"), median(name, streams, "pieces")
            rows.append(f"| `{name}` | {streams} | {ttft:.2f} s | {decode:.1f} | {total:.1f} | {pieces:.0f} |")
    table = "\n".join(rows)
    return f"""
`python bench/serve.py` (`make bench`): {model_name} (4-bit) + a LoRA adapter behind each server on 127.0.0.1,
streamed chat requests, greedy, {args.max_tokens} tokens each (end of turn banned with logit_bias), prompt
"{PROMPT}"; {args.rounds} rounds alternating between the servers; medians. Time to first token and decode tokens/s
are the mean over the round's streams; total tokens/s is all streams' tokens over the round's wall time.
{CPU_NOTE if on_cpu else ""}
| server | streams at once | time to first token | decode tokens/s per stream | total tokens/s | tokens per stream |
|---|---|---|---|---|---|
{table}
"""


if __name__ == "__main__":
    main()
