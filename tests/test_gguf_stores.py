"""GGUF models in Ollama's and LM Studio's stores: listed as importable, imported by their names."""

import json
from pathlib import Path

import pytest
from ollamastore import add_ollama_model
from tinymodels import write_gguf

from lora_tui.cli import main
from lora_tui.core.models.gguf_stores import discover_stored_ggufs
from lora_tui.core.models.store import load_model


@pytest.fixture(scope="module")
def tiny_gguf(tiny_model_dir, tmp_path_factory) -> Path:
    return write_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf") / "tiny.gguf", "Q8_0")


@pytest.fixture
def ollama_store(isolated_home, tiny_gguf) -> Path:
    store = Path.home() / ".ollama" / "models"
    add_ollama_model(store, "tiny:q8", tiny_gguf)
    add_ollama_model(store, "hf.co/someone/tiny-GGUF:Q8_0", tiny_gguf)
    return store


def test_ollama_models_are_listed_by_their_ollama_names(ollama_store, capsys):
    assert main(["models", "list", "--json"]) == 0
    listing = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert set(listing) == {"tiny:q8", "hf.co/someone/tiny-GGUF:Q8_0"}
    entry = listing["tiny:q8"]
    assert entry["format"] == "gguf" and entry["importable"] is True and entry["source"] == "ollama"
    assert entry["quantization"] == "Q8_0" and entry["architecture"] == "llama"
    assert entry["size_bytes"] == Path(entry["path"]).stat().st_size


def test_the_table_marks_them_importable(ollama_store, capsys):
    assert main(["models", "list"]) == 0
    captured = capsys.readouterr()
    row = next(line for line in captured.out.splitlines() if line.startswith("tiny:q8"))
    assert "GGUF Q8_0" in row and "ollama" in row
    assert "models import-gguf NAME" in captured.err


def test_ollama_models_dir_comes_from_the_environment(isolated_home, tiny_gguf, tmp_path, monkeypatch):
    store = tmp_path / "elsewhere"
    add_ollama_model(store, "moved:latest", tiny_gguf)
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    assert [m.name for m in discover_stored_ggufs()] == ["moved:latest"]


def test_import_by_ollama_name(ollama_store, isolated_home, capsys):
    assert main(["models", "import-gguf", "tiny:q8"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder == isolated_home.models_dir / "tiny-q8"
    _, tokenizer = load_model(folder)
    assert tokenizer.encode("hello")


def test_a_bare_ollama_name_means_latest(isolated_home, tiny_gguf, capsys):
    add_ollama_model(Path.home() / ".ollama" / "models", "tiny:latest", tiny_gguf)
    assert main(["models", "import-gguf", "tiny", "--name", "mine"]) == 0
    assert (isolated_home.models_dir / "mine" / "config.json").is_file()


def test_an_unknown_ollama_name_says_what_the_store_has(ollama_store, isolated_home, capsys):
    assert main(["models", "import-gguf", "gemma3:270m"]) == 1
    err = capsys.readouterr().err
    assert "gemma3:270m: no such file, and no Ollama model of that name" in err
    assert "tiny:q8" in err and "Traceback" not in err
    assert not isolated_home.models_dir.exists() or not any(isolated_home.models_dir.iterdir())


def test_a_damaged_manifest_hides_no_other_model(ollama_store):
    broken = ollama_store / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    missing_blob = ollama_store / "manifests" / "registry.ollama.ai" / "library" / "gone" / "latest"
    missing_blob.parent.mkdir(parents=True)
    missing_blob.write_text(json.dumps({"config": {"digest": "sha256:0"}, "layers": []}))
    assert sorted(m.name for m in discover_stored_ggufs()) == ["hf.co/someone/tiny-GGUF:Q8_0", "tiny:q8"]


def test_lm_studio_files_are_listed_and_imported(isolated_home, tiny_gguf, capsys):
    folder = Path.home() / ".lmstudio" / "models" / "someone" / "tiny-GGUF"
    folder.mkdir(parents=True)
    (folder / "tiny-Q8_0.gguf").write_bytes(tiny_gguf.read_bytes())
    (folder / "mmproj-tiny-f16.gguf").write_bytes(tiny_gguf.read_bytes())  # a vision projector: not a model
    [stored] = discover_stored_ggufs()
    assert (stored.name, stored.source, stored.quantization) == (
        "someone/tiny-GGUF/tiny-Q8_0.gguf",
        "lm-studio",
        "Q8_0",
    )
    assert stored.architecture == "llama"
    assert main(["models", "import-gguf", stored.name]) == 0
    assert Path(capsys.readouterr().out.strip()).name == "tiny-Q8_0"
