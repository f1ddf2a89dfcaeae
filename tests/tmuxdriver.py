"""Drive `lora-tui` in a real terminal: tmux with send-keys and capture-pane."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path


class TmuxApp:
    def __init__(self, home: Path, width: int = 100, height: int = 30) -> None:
        self.session = f"lora-tui-test-{os.getpid()}-{time.monotonic_ns()}"
        self.exit_file = home / "exit-code"
        preload = os.environ.get("LD_PRELOAD", "")
        command = (
            f"env TERM=screen-256color LORA_TUI_HOME={shlex.quote(str(home))} LD_PRELOAD={shlex.quote(preload)} "
            f"{shlex.quote(sys.executable)} -m lora_tui; echo $? > {shlex.quote(str(self.exit_file))}"
        )
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height), command], check=True
        )
        self.started = time.perf_counter()

    def screen(self) -> str:
        result = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.session], capture_output=True, text=True)
        return result.stdout

    def wait_for(self, text: str, timeout: float = 30.0) -> float:
        """Seconds since start when `text` appeared on screen."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if text in self.screen():
                return time.perf_counter() - self.started
            time.sleep(0.02)
        raise AssertionError(f"{text!r} never appeared; screen:\n{self.screen()}")

    def press(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.session, *keys], check=True)

    def wait_for_exit(self, timeout: float = 15.0) -> int:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.exit_file.exists() and self.exit_file.read_text().strip():
                return int(self.exit_file.read_text())
            time.sleep(0.05)
        raise AssertionError("lora-tui did not exit")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)
