"""Shared by the benchmarks: the machine, and writing a section of BENCHMARKS.md."""

from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

from lora_tui.core.files import atomic_write_text

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nWritten by the scripts in bench/; each section says when and where it ran.\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = names[0].strip() if names else cpu
    import mlx.core as mx

    blas = "OpenBLAS preloaded" if "openblas" in os.environ.get("LD_PRELOAD", "") else "bundled BLAS"
    backend = f"{mx.default_device()}" + (f", {blas}" if platform.system() == "Linux" else "")
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores; mlx {mx.__version__} ({backend})"


def write_section(title: str, body: str) -> None:
    """Replace (or add) the section `## title` in BENCHMARKS.md."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    stamp = f"_{datetime.date.today().isoformat()} on {machine()}_\n\n"
    section = f"## {title}\n\n{stamp}{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    atomic_write_text(BENCHMARKS, text.rstrip() + "\n")
    print(section)
