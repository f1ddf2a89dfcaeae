"""A fake Ollama store: what `ollama pull NAME` leaves on disk, for tests."""

import hashlib
import json
from pathlib import Path


def _blob(store: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (store / "blobs").mkdir(parents=True, exist_ok=True)
    (store / "blobs" / digest.replace(":", "-")).write_bytes(data)
    return digest


def add_ollama_model(store: Path, name: str, gguf_file: Path, file_type: str = "Q8_0") -> None:
    """What `ollama pull NAME` leaves: a manifest naming a config blob and the GGUF file as a layer."""
    host_path, tag = name.rsplit(":", 1)
    parts = host_path.split("/")
    if len(parts) == 1:
        parts = ["registry.ollama.ai", "library", *parts]
    config = json.dumps({"model_format": "gguf", "model_family": "llama", "file_type": file_type}).encode()
    manifest = {
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": _blob(store, config)},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": _blob(store, gguf_file.read_bytes())},
            {"mediaType": "application/vnd.ollama.image.template", "digest": _blob(store, b"{{ .Prompt }}")},
        ],
    }
    path = store.joinpath("manifests", *parts, tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
