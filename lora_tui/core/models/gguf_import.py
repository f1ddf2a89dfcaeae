"""Turn a GGUF file (Ollama's and LM Studio's stores) into an MLX model folder.

The header is read and checked first, so an unknown architecture or tensor type
is refused before any tensor is touched. Tensors are then read and converted one
at a time, a few million values at a read (gguf_quants: quantized blocks stay
quantized where MLX holds them exactly), so the file is never loaded whole.
mlx-lm loads the result through config.json's per-layer quantization table.
"""

from __future__ import annotations

import errno
import json
import shutil
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lora_tui.core.errors import UserError
from lora_tui.core.files import building_dir, exclusively
from lora_tui.core.models.gguf import GGUFError, GGUFFile, TensorInfo, read_gguf
from lora_tui.core.models.gguf_families import FAMILIES, ConfigError, Family
from lora_tui.core.models.gguf_quants import GROUP_SIZE, NEAREST_BITS, SUPPORTED_TYPES, Quantized, convert, mlx_bytes
from lora_tui.core.models.gguf_tokenizer import TokenizerImportError, write_tokenizer
from lora_tui.core.names import name_from_filename, validate_name
from lora_tui.core.units import human_bytes

SUPPORTED_ARCHITECTURES = tuple(FAMILIES)
IMPORT_RECORD = "lora_tui_import.json"  # where an imported model came from


@dataclass
class ImportReport:
    """What an import did to the tensors: how many stayed exact, and which took a nearest form."""

    exact: Counter = field(default_factory=Counter)  # GGML type -> tensor count
    changed: dict[str, tuple[str, int, float]] = field(default_factory=dict)  # name -> (GGML type, MLX bits, error)

    def lines(self) -> list[str]:
        kept = ", ".join(f"{count} {kind}" for kind, count in sorted(self.exact.items()))
        lines = [f"Kept as stored: {kept}."] if kept else []
        if self.changed:
            worst_name, (_, _, error) = max(self.changed.items(), key=lambda item: item[1][2])
            by_type = Counter(f"{kind} -> {bits}-bit" for kind, bits, _ in self.changed.values())
            summary = ", ".join(f"{count} {change}" for change, count in sorted(by_type.items()))
            lines.append(
                f"Re-quantized (MLX has no 16-value groups): {summary}; largest change {error:.3g} in {worst_name}."
            )
        return lines


def unpermute_rows(array, n_heads: int):
    """Undo llama.cpp's reordering of Q/K rows for its RoPE layout, per head."""
    rows = array.shape[0]
    head_dim = rows // n_heads
    return array.reshape(n_heads, head_dim // 2, 2, *array.shape[1:]).swapaxes(1, 2).reshape(array.shape)


def read_importable(gguf_path: Path) -> tuple[GGUFFile, Family]:
    """The file's header and family, or a UserError naming what cannot be imported: nothing is converted."""
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise UserError(f"{gguf_path}: no such file.")
    try:
        gguf = read_gguf(gguf_path)
    except GGUFError as exc:
        raise UserError(f"{gguf_path}: {exc}.") from None
    except OSError as exc:
        raise UserError(f"{gguf_path}: cannot read it ({exc.strerror}).") from None
    return gguf, _family(gguf)


def import_gguf(
    gguf_path: Path,
    models_dir: Path,
    name: str | None = None,
    log: Callable[[str], None] = lambda message: None,
    progress: Callable[[int, int], None] = lambda done, total: None,
    stop: threading.Event | None = None,
) -> Path:
    """Import `gguf_path` as models_dir/NAME; return the new folder. `progress(bytes_done, bytes_total)`;
    `stop` set ends the import after the tensor it is on, leaving nothing behind."""
    gguf_path = Path(gguf_path)
    name = validate_name(name, "model name") if name else name_from_filename(gguf_path.stem)
    target = Path(models_dir) / name
    if target.exists():
        raise UserError(f"A model named {name!r} already exists at {target}; choose another --name.")
    gguf, family = read_importable(gguf_path)
    config = model_config(gguf)
    _check_tensor_names(gguf, family, config)
    _check_room(gguf, family, target)
    with exclusively(target):  # two imports of one name at once: one writes it, the other is refused
        if target.exists():
            raise UserError(f"A model named {name!r} already exists at {target}; choose another --name.")
        log(f"Importing {gguf_path.name}: {family.architecture}, {len(gguf.tensors)} tensors")
        with building_dir(target) as staging:
            report = _write_model(gguf, family, config, staging, progress, stop or threading.Event())
    for line in report.lines():
        log(line)
    log(f"Imported as {target}")
    return target


def _family(gguf: GGUFFile) -> Family:
    architecture = gguf.metadata.get("general.architecture")
    family = FAMILIES.get(architecture)
    if family is None:
        raise UserError(
            f"{gguf.path}: architecture {architecture!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})."
        )
    for tensor in gguf.tensors:
        if tensor.type_name not in SUPPORTED_TYPES:
            raise UserError(
                f"{gguf.path}: tensor {tensor.name!r} has type {tensor.type_name}, which is not supported "
                f"(supported: {', '.join(SUPPORTED_TYPES)})."
            )
        base = tensor.name.rpartition(".")[0]
        if base not in family.skipped and family.mlx_name(base) is None:
            raise UserError(f"{gguf.path}: tensor {tensor.name!r} has no place in a {family.model_type} model.")
    return family


TOKENIZER_ROOM = 64 * 1024**2  # tokenizer.json and the rest, beyond the weights


def output_bytes(gguf: GGUFFile, family: Family) -> int:
    """What the imported model will take on disk (and, while it is written, in memory)."""
    weights = sum(
        mlx_bytes(t.type_name, t.shape, family.float32_activations)
        for t in gguf.tensors
        if family.mlx_name(t.name.rpartition(".")[0]) is not None
    )
    return weights + TOKENIZER_ROOM


def _check_room(gguf: GGUFFile, family: Family, target: Path) -> None:
    needed = output_bytes(gguf, family)
    existing = next(p for p in (target.parent, *target.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise UserError(
            f"{gguf.path}: the MLX model needs about {human_bytes(needed)} and {existing} has "
            f"{human_bytes(free)} free; make room and import again."
        )


def _check_tensor_names(gguf: GGUFFile, family: Family, config: dict) -> None:
    """The file's tensors are the ones the family's mlx-lm model has: a mislabelled file is refused here."""
    import importlib

    from mlx.utils import tree_flatten

    module = importlib.import_module(f"mlx_lm.models.{family.model_type}")
    model = module.Model(module.ModelArgs.from_dict(config))  # lazy: no weights are made
    expected = {name for name, _ in tree_flatten(model.parameters())}
    if config["tie_word_embeddings"]:
        expected.discard("lm_head.weight")
    present = set()
    for tensor in gguf.tensors:
        base, _, suffix = tensor.name.rpartition(".")
        target = family.mlx_name(base)
        if target is not None:
            present.add(f"{target}.{suffix}")
    missing, unexpected = sorted(expected - present), sorted(present - expected)
    if missing or unexpected:
        detail = "; ".join(
            f"{what} {_few(names)}" for what, names in (("missing", missing), ("unexpected", unexpected)) if names
        )
        raise UserError(
            f"{gguf.path}: its tensors do not make a {family.architecture} model ({detail}); "
            "is the file mislabelled or damaged?"
        )


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")


def _write_model(
    gguf: GGUFFile,
    family: Family,
    config: dict,
    folder: Path,
    progress: Callable[[int, int], None],
    stop: threading.Event,
) -> ImportReport:
    import mlx.core as mx

    try:  # first: a tokenizer we cannot rebuild is refused before the long part, and its memory is freed
        write_tokenizer(gguf.metadata, folder)
    except TokenizerImportError as exc:
        raise UserError(f"{gguf.path}: {exc}.") from None
    weights, quantized_bits, report = _convert_tensors(gguf, family, config, progress, stop)
    if quantized_bits:
        config["quantization"] = _quantization_table(quantized_bits)
    try:
        mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
        (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    except (RuntimeError, OSError) as exc:  # MLX says "[write] Unable to write N bytes" where the OS says ENOSPC
        if isinstance(exc, OSError) and exc.errno != errno.ENOSPC:
            raise
        free = human_bytes(shutil.disk_usage(folder).free)
        raise UserError(
            f"{gguf.path}: the disk filled while writing the MLX model ({free} free); nothing was left behind."
        ) from None
    provenance = {"imported_from": str(gguf.path), "gguf_name": str(gguf.metadata.get("general.name", ""))}
    (folder / IMPORT_RECORD).write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    return report


def _convert_tensors(
    gguf: GGUFFile, family: Family, config: dict, progress: Callable[[int, int], None], stop: threading.Event
) -> tuple[dict, dict[str, int], ImportReport]:
    weights: dict = {}
    quantized_bits: dict[str, int] = {}
    report = ImportReport()
    total, done = sum(t.nbytes for t in gguf.tensors), 0
    for tensor in gguf.tensors:
        if stop.is_set():
            raise UserError(f"Import of {gguf.path.name} stopped; nothing was written.")
        base, _, suffix = tensor.name.rpartition(".")
        target = family.mlx_name(base)
        done += tensor.nbytes
        if target is None:
            continue
        converted = _converted(gguf, family, config, tensor, base)
        if isinstance(converted, Quantized):
            for key in ("weight", "scales", "biases"):
                weights[f"{target}.{key}"] = _mx(getattr(converted, key))
                setattr(converted, key, None)  # the numpy copy goes as soon as MLX has its own
            quantized_bits[target] = converted.bits
            if tensor.type_name in NEAREST_BITS:
                report.changed[tensor.name] = (tensor.type_name, converted.bits, converted.max_error)
            else:
                report.exact[tensor.type_name] += 1
        else:
            weights[f"{target}.{suffix}"] = _float_tensor(converted, tensor)
            report.exact[tensor.type_name] += 1
        progress(done, total)
    return weights, quantized_bits, report


def _converted(gguf: GGUFFile, family: Family, config: dict, tensor: TensorInfo, base: str):
    try:
        converted = convert(gguf.reader(tensor), tensor.type_name, tensor.shape)
    except GGUFError as exc:
        raise UserError(f"{gguf.path}: {exc}.") from None
    part = base.rsplit(".", 1)[-1]
    if family.permutes_qk and base.startswith("blk.") and part in ("attn_q", "attn_k"):
        heads = config["num_attention_heads"] if part == "attn_q" else config["num_key_value_heads"]
        if isinstance(converted, Quantized):
            for key in ("weight", "scales", "biases"):
                setattr(converted, key, unpermute_rows(getattr(converted, key), heads))
        else:
            converted = unpermute_rows(converted, heads)
    if family.float32_activations and isinstance(converted, Quantized):
        converted.scales, converted.biases = converted.scales.astype(np.float32), converted.biases.astype(np.float32)
    if family.norm_offset and family.is_norm(base):
        converted = np.asarray(converted, dtype=np.float32) - np.float32(family.norm_offset)
    return converted


def _mx(array: np.ndarray):
    import mlx.core as mx

    return mx.array(np.ascontiguousarray(array))


def _float_tensor(array: np.ndarray, tensor: TensorInfo):
    import mlx.core as mx

    if tensor.type_name == "BF16":  # numpy has no bfloat16: the raw bits, viewed as MLX's
        return mx.array(np.ascontiguousarray(array)).view(mx.bfloat16)
    return _mx(array)


def _quantization_table(quantized_bits: dict[str, int]) -> dict:
    common_bits = Counter(quantized_bits.values()).most_common(1)[0][0]
    table: dict = {"group_size": GROUP_SIZE, "bits": common_bits}
    for layer, bits in sorted(quantized_bits.items()):
        if bits != common_bits:
            table[layer] = {"group_size": GROUP_SIZE, "bits": bits}
    return table


def model_config(gguf: GGUFFile) -> dict:
    """The config.json an import of `gguf` writes (before its quantization table)."""
    try:
        return _family(gguf).config(gguf)
    except ConfigError as exc:
        raise UserError(f"{gguf.path}: {exc}.") from None
