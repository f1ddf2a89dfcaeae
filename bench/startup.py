"""Time from `lora-tui` launched in a terminal (tmux, 80x24) to its first screen.

Target: under 1.5 s. Nothing on the way imports mlx, mlx-lm or spaCy.

    python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from report import write_section
from tmuxdriver import TmuxApp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    times = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as home:
            app = TmuxApp(Path(home), 80, 24)
            try:
                times.append(app.wait_for("Start training"))
                app.press("C-q")
                app.wait_for_exit()
            finally:
                app.close()
            time.sleep(0.2)
    body = f"""
`python bench/startup.py`: `lora-tui` started in tmux (80x24, TERM=screen-256color) until the Train screen's
"Start training" is on screen, {args.runs} runs (the first includes a cold file cache).

| median | min | max | target |
|---|---|---|---|
| {statistics.median(times):.2f} s | {min(times):.2f} s | {max(times):.2f} s | < 1.5 s |
"""
    write_section("Time to first screen (bench/startup.py)", body)


if __name__ == "__main__":
    main()
