"""Every export format behind one call, for the command line and the Adapters screen alike."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.adapters.card import CARD
from lora_tui.core.adapters.convert import export_peft
from lora_tui.core.adapters.gguf_export import check_type, export_gguf, export_lora_gguf
from lora_tui.core.adapters.packages import LMSTUDIO_MODELS, LMSTUDIO_PUBLISHER, export_lmstudio, export_ollama
from lora_tui.core.adapters.registry import AdapterInfo, adapter_base_path
from lora_tui.core.adapters.verify import Verification, verify_gguf
from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_write_text
from lora_tui.core.locations import Locations
from lora_tui.core.models.gguf_import import IMPORT_RECORD

FORMATS = {
    "peft": "Hugging Face PEFT (the adapter)",
    "gguf": "GGUF, base + adapter merged (llama.cpp)",
    "gguf-lora": "GGUF LoRA, the adapter alone (llama.cpp --lora)",
    "ollama": "Ollama (GGUF + Modelfile)",
    "lmstudio": "LM Studio (merged MLX model)",
}
DEFAULT_TYPES = {"gguf": "f16", "ollama": "q8_0"}


@dataclass(frozen=True)
class ExportRequest:
    format: str
    out: Path | None = None  # None: the format's default place
    type_name: str | None = None  # GGUF tensor type; None: the format's default
    as_lora: bool = False  # ollama: base and adapter as two files
    base_model_name: str | None = None  # peft: the base's hub id for PEFT's config
    overwrite: bool = False
    verify: bool = True  # GGUF formats: read the file back in llama.cpp and compare with MLX


@dataclass(frozen=True)
class Exported:
    path: Path
    how_to_use: str


def default_out(info: AdapterInfo, request: ExportRequest, folder: Path) -> Path:
    type_name = request.type_name or DEFAULT_TYPES.get(request.format, "")
    return {
        "peft": folder / f"{info.name}-peft",
        "gguf": folder / f"{info.name}-{type_name}.gguf",
        "gguf-lora": folder / f"{info.name}-lora.gguf",
        "ollama": folder / f"{info.name}-ollama",
        "lmstudio": LMSTUDIO_MODELS / LMSTUDIO_PUBLISHER / info.name.replace(" ", "-"),
    }[request.format]


def imported_from(model_path: Path) -> Path | None:
    """The GGUF file a model was imported from, when it is still there."""
    try:
        source = json.loads((model_path / IMPORT_RECORD).read_text(encoding="utf-8")).get("imported_from")
    except (OSError, ValueError):
        return None
    return Path(source) if source and Path(source).is_file() else None


def export_adapter(
    info: AdapterInfo,
    request: ExportRequest,
    locations: Locations,
    extra_model_dirs: list[Path],
    default_folder: Path,
    log: Callable[[str], None] = lambda message: None,
) -> Exported:
    """Export `info` as `request` says; where the files are and the command that uses them."""
    out = request.out or default_out(info, request, default_folder)
    if request.format == "peft":
        path = export_peft(locations.adapters_dir, info.name, out, request.base_model_name)
        return Exported(path, f"PeftModel.from_pretrained(base_model, {str(path)!r})")
    base = adapter_base_path(info, locations.models_dir, extra_model_dirs)
    type_name = check_type(request.type_name or DEFAULT_TYPES.get(request.format, "f16"))
    check = _checker(request, base, info, log)
    if request.format == "gguf":
        path = export_gguf(base, out, info.path, type_name, name=info.name, overwrite=request.overwrite, log=log)
        check(path, path)
        return Exported(path, f"llama-cli -m {path}")
    if request.format == "gguf-lora":
        path = export_lora_gguf(info.path, base, out, overwrite=request.overwrite, log=log)
        original = imported_from(base)
        base_file = original or Path(f"{base.name}.gguf")
        if original:
            check(path, original, lora=path)
        elif request.verify:
            log(f"Not checked in llama.cpp: no GGUF file of {base.name} to apply it to (`lora-tui models export`).")
        note = "" if original else f"   ({base_file}: `lora-tui models export {base.name}`)"
        return Exported(path, f"llama-cli -m {base_file} --lora {path}{note}")
    if request.format == "ollama":
        path = export_ollama(info, base, out, type_name, as_lora=request.as_lora, log=log)
        if request.as_lora:
            verification = check(path, path / "base.gguf", lora=path / "adapter.gguf")
        else:
            verification = check(path, path / "model.gguf")
        if verification is not None:
            _add_to_card(path / CARD, verification)
        return Exported(path, f"ollama create {info.name.lower().replace(' ', '-')} -f {path / 'Modelfile'}")
    path = export_lmstudio(info, base, locations.adapters_dir, out, log=log)
    return Exported(path, f"LM Studio: My Models, {LMSTUDIO_PUBLISHER}/{path.name}")


def _checker(request: ExportRequest, base: Path, info: AdapterInfo, log: Callable[[str], None]):
    """`check(written, gguf_file, lora=None)`: the file read back in llama.cpp and compared with the adapter in
    MLX (unless the request says not to). A file that clearly behaves otherwise is removed: lora-tui just wrote it."""

    def check(written: Path, gguf_file: Path, lora: Path | None = None) -> Verification | None:
        if not request.verify:
            return None
        log("Checking the file in llama.cpp against the adapter in MLX ...")
        try:
            verification = verify_gguf(base, info.path, gguf_file, lora, log=log)
        except UserError:
            if written.is_dir():
                shutil.rmtree(written)
            else:
                written.unlink(missing_ok=True)
            raise
        if verification is not None:
            log(verification.line())
        return verification

    return check


def _add_to_card(card: Path, verification: Verification) -> None:
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    atomic_write_text(card, text.rstrip("\n") + f"\n\n## Checked in llama.cpp\n\n{verification.line()}\n")
