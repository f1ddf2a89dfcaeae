"""Key press to screen update while the real demo model trains in the app's worker.

The app starts a real run (SmolLM2-135M-Instruct, dequantized for the CPU
backend) exactly as the Train screen does; while MLX keeps the cores busy,
the benchmark presses area keys (3 and 2, alternately) and times each press
until the new area's screen has been refreshed (`call_after_refresh`). Textual's
pilot is not used for timing: its `press`/`pause` wait for the whole process to
go idle, which a training process never does. Target: p95 under 100 ms.

    python bench/responsiveness.py [--presses N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402


async def measure(presses: int) -> tuple[list[float], int]:
    from lora_tui.app import make_app
    from lora_tui.core.demo import ensure_demo_model
    from lora_tui.core.params import build_params
    from lora_tui.core.trainer import TrainingJob
    from lora_tui.locations import Locations
    from lora_tui.messages import TrainingRequested

    locations = Locations.from_environment().ensure()
    model = ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data"
        data.mkdir()
        row = {"messages": [{"role": "user", "content": "Tell me about LoRA."},
                            {"role": "assistant", "content": "LoRA trains small low-rank matrices. " * 8}]}
        (data / "train.jsonl").write_text((json.dumps(row) + "\n") * 64)
        job = TrainingJob(model, data, Path(scratch) / "adapter", build_params({"epochs": 1, "max_seq_length": 256}))
        app = make_app()
        delays = []
        async with app.run_test(size=(120, 40)):
            app.post_message(TrainingRequested(job))
            while not app.run_events or app.run_events[-1].type == "started":
                await asyncio.sleep(0.1)  # wait until steps are running
            for index in range(presses):
                key, area = ("2", "train") if index % 2 == 0 else ("3", "dashboard")
                started = time.perf_counter()
                app.simulate_key(key)
                while app.current_mode != area:
                    await asyncio.sleep(0.001)
                drawn = asyncio.get_running_loop().create_future()
                app.screen.call_after_refresh(lambda future=drawn: future.set_result(time.perf_counter()))
                delays.append(await drawn - started)
                await asyncio.sleep(0.2)
            steps = sum(1 for e in app.run_events if e.type == "step")
            app.stop_training()
            while app.training_running:
                await asyncio.sleep(0.1)
        return delays, steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=40)
    args = parser.parse_args()
    delays, steps = asyncio.run(measure(args.presses))
    ms = sorted(d * 1000 for d in delays)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    body = f"""
`python bench/responsiveness.py`: {len(ms)} area switches (keys 2 and 3) while the app's worker trained the demo
model ({steps} steps ran meanwhile), each timed from the key press until the new screen was rendered
(headless, 120x40; key posted with `simulate_key`, stopped by `call_after_refresh` on the new screen).

| median | p95 | max | target |
|---|---|---|---|
| {statistics.median(ms):.0f} ms | {p95:.0f} ms | {ms[-1]:.0f} ms | p95 < 100 ms |
"""
    write_section("Responsiveness while training (bench/responsiveness.py)", body)


if __name__ == "__main__":
    main()
