"""GGUF import: time, peak memory and output size for the real models, against the ways there are without it.

- lora-tui: `lora-tui models import-gguf FILE` in a process of its own (its peak RSS is the process's).
- MLX's own reader: `mx.load(FILE)` (what lora-tui used before): it reads Q4_0/Q4_1/Q8_0 only.
- Dequantize everything: every tensor through the gguf library to float16 (what a converter without
  MLX's quantized form keeps), in a process of its own.
- Refusal: a file with Gemma's whole header (262,144 tokens) but an unsupported architecture.

    python bench/gguf_import.py
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
from report import write_section  # noqa: E402

DEQUANTIZE_ALL = """
import sys, numpy as np, gguf
from gguf.quants import dequantize
reader = gguf.GGUFReader(sys.argv[1])
total = 0
for tensor in reader.tensors:
    total += dequantize(tensor.data, tensor.tensor_type).astype(np.float16).nbytes
print(total)
"""
CLI = "import sys; from lora_tui.cli import main; sys.exit(main(sys.argv[1:]))"
MLX_LOAD = """
import sys, mlx.core as mx
weights = mx.load(sys.argv[1])
mx.eval(list(weights.values()))
print(sum(v.nbytes for v in weights.values()))
"""


def peak_of(code: str, *args: str, env: dict | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """(seconds, peak RSS in MB, result) of `python -c CODE ARGS...`; the child reports its own VmHWM."""
    wrapper = (
        "import atexit, sys\n"
        "def report():\n"
        "    peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "    sys.stderr.write(f'\\nPEAK_KB {peak}\\n')\n"
        "atexit.register(report)\n"
        "code, sys.argv = sys.argv[1], ['-c', *sys.argv[2:]]\n"
        "exec(compile(code, '<bench>', 'exec'), {'__name__': '__main__'})\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", wrapper, code, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    seconds = time.perf_counter() - started
    peaks = [line for line in result.stderr.splitlines() if line.startswith("PEAK_KB")]
    return seconds, int(peaks[-1].split()[1]) / 1024 if peaks else float("nan"), result


OTHER_WAYS = {"`mx.load` (MLX's reader)": MLX_LOAD, "dequantize all to f16 (gguf)": DEQUANTIZE_ALL}


def import_with_lora_tui(gguf_file: Path, home: Path) -> tuple[float, float, int, list[str]]:
    seconds, peak, result = peak_of(
        CLI, "models", "import-gguf", str(gguf_file), "--name", "bench", env={"LORA_TUI_HOME": str(home)}
    )
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip())
    size = sum(f.stat().st_size for f in folder.iterdir())
    said = [line for line in result.stderr.splitlines() if line.startswith(("Kept", "Re-quantized"))]
    return seconds, peak, size, said


def other_way(code: str, gguf_file: Path) -> tuple[float, float, str]:
    seconds, peak, result = peak_of(code, str(gguf_file))
    if result.returncode != 0:
        reason = [line for line in result.stderr.splitlines() if "Error" in line]
        return seconds, peak, f"fails: `{reason[-1].strip() if reason else 'error'}`"
    return seconds, peak, f"{int(result.stdout.strip()) / 1e6:.0f} MB of weights"


def unsupported_copy(gguf_file: Path, out: Path) -> Path:
    """The file with `general.architecture` = falcon and zeros for tensor data (a sparse file): only the
    architecture is wrong, so the refusal is the one a whole file of another family gets."""
    from lora_tui.core.models.gguf import read_gguf

    header = read_gguf(gguf_file)
    end = min(t.offset for t in header.tensors)
    data = bytearray(gguf_file.read_bytes()[:end])
    marker = b"gemma3"
    at = data.index(b"general.architecture") + len(b"general.architecture") + 4  # key, then the value's type
    length = int.from_bytes(data[at : at + 8], "little")
    assert bytes(data[at + 8 : at + 8 + length]) == marker
    data[at + 8 : at + 8 + length] = b"falcon"
    out.write_bytes(bytes(data))
    os.truncate(out, gguf_file.stat().st_size)
    return out


def refusal(gguf_file: Path, home: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CLI, "models", "import-gguf", str(gguf_file)],
        capture_output=True,
        text=True,
        env={**os.environ, "LORA_TUI_HOME": str(home)},
    )
    return time.perf_counter() - started, result.stderr.strip().splitlines()[-1]


def in_process_refusal(gguf_file: Path) -> float:
    from lora_tui.core.errors import UserError
    from lora_tui.core.models.gguf_import import read_importable

    started = time.perf_counter()
    with contextlib.suppress(UserError):
        read_importable(gguf_file)
    return time.perf_counter() - started


def main() -> None:
    from conftest import DEMO_CACHE, GEMMA_CACHE
    from gemmafile import gemma_gguf_file

    from lora_tui.core.models.demo import demo_gguf_file

    files = {
        "Gemma 3 270M Q4_K_M": gemma_gguf_file(GEMMA_CACHE),
        "SmolLM2-135M-Instruct Q4_1 (demo)": demo_gguf_file(DEMO_CACHE / "cache"),
    }
    rows, said = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for label, gguf_file in files.items():
            file_mb = gguf_file.stat().st_size / 1e6
            seconds, peak, size, lines = import_with_lora_tui(gguf_file, Path(scratch) / label.split()[0])
            said[label] = lines
            made = f"{size / 1e6:.0f} MB MLX model (weights and tokenizer)"
            rows.append(f"| {label}, {file_mb:.0f} MB | lora-tui import | {seconds:.1f} s | {peak:.0f} MB | {made} |")
            for way, code in OTHER_WAYS.items():
                seconds, peak, outcome = other_way(code, gguf_file)
                rows.append(f"| {label} | {way} | {seconds:.1f} s | {peak:.0f} MB | {outcome} |")
        gemma = files["Gemma 3 270M Q4_K_M"]
        falcon = unsupported_copy(gemma, Path(scratch) / "falcon.gguf")
        cli_seconds, message = refusal(falcon, Path(scratch) / "refusal")
        core_seconds = min(in_process_refusal(falcon) for _ in range(3))
    body = [
        "`python bench/gguf_import.py`: each way in a process of its own; peak is the process's VmHWM "
        "(Python, numpy and MLX included: ~250 MB of it is mlx-lm and transformers being imported).",
        "",
        "| file | way | time | peak memory | result |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "What the imports said:",
        "",
        *(f"- {label}: {' '.join(lines)}" for label, lines in said.items()),
        "",
        "lora-tui's peak is the process before any tensor (Python, MLX, mlx-lm and transformers, ~290 MB), then "
        "the larger of the tokenizer being built (Gemma's 262,144 tokens; freed before the weights) and the "
        "output being held while tensors are converted one at a time from the file (never read whole). "
        "MLX's own reader cannot read k-quants; dequantizing to f16 holds the whole file in float32 on the way.",
        "",
        f"A file with Gemma's whole header (262,144 tokens) and an unsupported architecture is refused in "
        f"{core_seconds:.2f} s (reading the header) and {cli_seconds:.2f} s for the whole `lora-tui models "
        f"import-gguf` process, Python's start included: `{message}`",
    ]
    write_section("GGUF import (bench/gguf_import.py)", "\n".join(body))


if __name__ == "__main__":
    main()
