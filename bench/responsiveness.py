"""Key press to screen update while the real demo model trains, and while it generates in Chat.

1. Training: the app starts a real run (SmolLM2-135M-Instruct, dequantized for
   the CPU backend) exactly as the Train screen does; while MLX keeps the cores
   busy, the benchmark presses area keys (3 and 2, alternately) and times each
   press until the new area's screen has been refreshed (`call_after_refresh`).
2. Chat: the Chat screen streams a long reply from the demo model; meanwhile
   the benchmark presses Ctrl+O (show/hide the settings panel) and times each
   press until the screen has been refreshed with the panel changed.

Textual's pilot is not used for timing: its `press`/`pause` wait for the whole
process to go idle, which a training or generating process never does.
Target: p95 under 100 ms.

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
from report import write_section


async def wait_for(condition, what: str, app, seconds: float = 300) -> None:
    """Poll until `condition()`; a clear error (with the app's notices) rather than a hang."""
    deadline = time.perf_counter() + seconds
    while not condition():
        if time.perf_counter() > deadline:
            notices = "; ".join(n.message for n in app._notifications) or "none"
            raise SystemExit(
                f"bench/responsiveness.py: gave up waiting for {what} after {seconds:.0f} s (notices: {notices})"
            )
        await asyncio.sleep(0.05)


async def timed_press(app, key: str, done) -> float:
    """Seconds from posting `key` until the screen is refreshed after `done()` became true."""
    started = time.perf_counter()
    app.simulate_key(key)
    while not done():
        await asyncio.sleep(0.001)
    drawn = asyncio.get_running_loop().create_future()
    app.screen.call_after_refresh(lambda: drawn.set_result(time.perf_counter()))
    return await drawn - started


async def measure_chat(presses: int) -> tuple[list[float], int]:
    from textual.widgets import Input, Select

    from lora_tui.app import make_app
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model

    locations = Locations.from_environment().ensure()
    ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    app = make_app()
    delays = []
    async with app.run_test(size=(120, 40)):
        await app.switch_mode("chat")
        screen = app.screen
        picker = screen.query_one("#chat-model-a", Select)
        await wait_for(lambda: picker.value is not Select.NULL, "a model in the chat picker", app)
        screen.query_one("#sampling-max_tokens", Input).value = "4000"
        screen.query_one("#sampling-temperature", Input).value = "1.0"
        box = screen.query_one("#chat-input", Input)
        box.value = "Write a long story about a lighthouse keeper."
        await box.action_submit()
        await wait_for(lambda: screen.sides["a"].reply, "the first tokens of the reply", app)
        panel = screen.query_one("#chat-settings-panel")
        for _ in range(presses):
            if not screen.generating:
                break
            shown = panel.display
            delays.append(await timed_press(app, "ctrl+o", lambda shown=shown: panel.display != shown))
            await asyncio.sleep(0.2)
        pieces = len(screen.sides["a"].reply)
        screen.action_stop()
        while screen.generating:
            await asyncio.sleep(0.05)
    return delays, pieces


async def measure(presses: int) -> tuple[list[float], int]:
    from lora_tui.app import make_app
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model
    from lora_tui.core.training.job import TrainingJob
    from lora_tui.core.training.params import build_params
    from lora_tui.messages import TrainingRequested

    locations = Locations.from_environment().ensure()
    model = ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data"
        data.mkdir()
        row = {
            "messages": [
                {"role": "user", "content": "Tell me about LoRA."},
                {"role": "assistant", "content": "LoRA trains small low-rank matrices. " * 8},
            ]
        }
        (data / "train.jsonl").write_text((json.dumps(row) + "\n") * 64)
        job = TrainingJob(model, data, Path(scratch) / "adapter", build_params({"epochs": 1, "max_seq_length": 256}))
        app = make_app()
        delays = []
        async with app.run_test(size=(120, 40)):
            app.post_message(TrainingRequested(job))
            await wait_for(lambda: any(e.type == "step" for e in app.run_events), "training steps", app)
            for index in range(presses):
                key, area = ("2", "train") if index % 2 == 0 else ("3", "dashboard")
                delays.append(await timed_press(app, key, lambda area=area: app.current_mode == area))
                await asyncio.sleep(0.2)
            steps = sum(1 for e in app.run_events if e.type == "step")
            app.stop_training()
            while app.training_running:
                await asyncio.sleep(0.1)
        return delays, steps


def row(label: str, delays: list[float]) -> str:
    ms = sorted(d * 1000 for d in delays)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    verdict = "met" if p95 < 100 else "not met"
    return f"| {label} | {len(ms)} | {statistics.median(ms):.0f} ms | {p95:.0f} ms | {ms[-1]:.0f} ms | {verdict} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=100)
    args = parser.parse_args()
    training, steps = asyncio.run(measure(args.presses))
    chatting, characters = asyncio.run(measure_chat(args.presses))
    body = f"""
`python bench/responsiveness.py`: each key press timed from posting it (`simulate_key`) until the screen was
rendered with its effect (`call_after_refresh`), headless at 120x40, on the demo model.
While training: area switches (keys 2 and 3) as the app's worker trained ({steps} steps ran meanwhile).
While generating: Ctrl+O (settings panel) as the Chat screen streamed a reply ({characters} characters meanwhile).

| while | presses | median | p95 | max | p95 < 100 ms |
|---|---|---|---|---|---|
{row("training", training)}
{row("generating", chatting)}
"""
    write_section("Responsiveness while training and generating (bench/responsiveness.py)", body)


if __name__ == "__main__":
    main()
