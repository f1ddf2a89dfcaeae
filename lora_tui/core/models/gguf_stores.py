"""GGUF models in other apps' stores, ready to import: Ollama's and LM Studio's.

- Ollama keeps `manifests/HOST/NAMESPACE/NAME/TAG` (JSON naming content-addressed layers)
  and `blobs/sha256-HEX` under `~/.ollama/models` (or `$OLLAMA_MODELS`). The layer of media
  type `application/vnd.ollama.image.model` is the GGUF file itself; the config blob says
  its family and quantization. `registry.ollama.ai/library/gemma3/270m` is `gemma3:270m`.
- LM Studio keeps `PUBLISHER/REPO/FILE.gguf` under `~/.lmstudio/models` (older versions:
  `~/.cache/lm-studio/models`).
Listing reads manifests, file names and the first header keys only, never the weights.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from lora_tui.core.errors import UserError

OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_DEFAULT_HOST = "registry.ollama.ai"
_QUANT_IN_NAME = re.compile(r"(?<![A-Za-z0-9])(I?Q\d_[A-Z0-9_]+?|BF16|F16|F32)(?=[.\-]|$)", re.IGNORECASE)


@dataclass(frozen=True)
class StoredGGUF:
    """A GGUF file another app keeps, and what `models list` says of it."""

    name: str  # Ollama's name (gemma3:270m) or LM Studio's PUBLISHER/REPO/FILE.gguf
    path: Path
    source: str  # "ollama" or "lm-studio"
    architecture: str
    quantization: str  # Q4_K_M, Q8_0, ... or "?"
    size_bytes: int

    def to_json(self) -> dict:
        return {**asdict(self), "path": str(self.path), "format": "gguf", "importable": True}

    @property
    def import_name(self) -> str:
        """The name an import gives it in lora-tui's store: gemma3:270m -> gemma3-270m."""
        stem = self.name.rsplit("/", 1)[-1].removesuffix(".gguf")
        return re.sub(r"[^\w\-]+", "-", stem).strip("-") or "imported"


def ollama_models_dir() -> Path:
    return Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models").expanduser()


def lm_studio_dirs() -> list[Path]:
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def discover_stored_ggufs() -> list[StoredGGUF]:
    """Every GGUF model in Ollama's and LM Studio's stores; damaged entries are skipped."""
    return [*_ollama_models(ollama_models_dir()), *_lm_studio_models(lm_studio_dirs())]


def find_ollama_model(name: str) -> StoredGGUF:
    """An Ollama model by the name `ollama list` shows (`gemma3` means `gemma3:latest`)."""
    wanted = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
    models = list(_ollama_models(ollama_models_dir()))
    for model in models:
        if model.name == wanted:
            return model
    names = ", ".join(m.name for m in models) or "none"
    raise UserError(
        f"{name}: no such file, and no Ollama model of that name in {ollama_models_dir()} (it has: {names})."
    )


def _ollama_models(root: Path):
    manifests = root / "manifests"
    if not manifests.is_dir():
        return
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        try:
            model = _ollama_model(root, manifest)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # a manifest we cannot read names no model we can import
        if model is not None:
            yield model


def _ollama_model(root: Path, manifest: Path) -> StoredGGUF | None:
    parts = manifest.relative_to(root / "manifests").parts
    if len(parts) < 3:
        return None
    host, *path, tag = parts
    document = json.loads(manifest.read_text(encoding="utf-8"))
    layer = next((item for item in document["layers"] if item["mediaType"] == OLLAMA_MODEL_LAYER), None)
    if layer is None:
        return None
    blob = _blob(root, layer["digest"])
    if not blob.is_file():
        return None
    config = json.loads(_blob(root, document["config"]["digest"]).read_text(encoding="utf-8"))
    path = path[1:] if host == OLLAMA_DEFAULT_HOST and path[0] == "library" else [host, *path]
    return StoredGGUF(
        name=f"{'/'.join(path)}:{tag}",
        path=blob,
        source="ollama",
        architecture=str(config.get("model_family") or _architecture(blob)),
        quantization=str(config.get("file_type") or "?"),
        size_bytes=blob.stat().st_size,
    )


def _blob(root: Path, digest: str) -> Path:
    return root / "blobs" / digest.replace(":", "-")


def _lm_studio_models(roots: list[Path]):
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for file in sorted(root.glob("*/*/*.gguf")):
            if file.resolve() in seen or file.name.startswith("mmproj"):  # mmproj: a vision projector
                continue
            seen.add(file.resolve())
            match = _QUANT_IN_NAME.search(file.stem)
            yield StoredGGUF(
                name=file.relative_to(root).as_posix(),
                path=file,
                source="lm-studio",
                architecture=_architecture(file),
                quantization=match.group(1).upper() if match else "?",
                size_bytes=file.stat().st_size,
            )


def _architecture(file: Path) -> str:
    from lora_tui.core.models.gguf import GGUFError, peek_metadata  # numpy and gguf: not at the app's start

    try:
        return str(peek_metadata(file, {"general.architecture"}).get("general.architecture", "?"))
    except (OSError, ValueError, GGUFError):
        return "?"
