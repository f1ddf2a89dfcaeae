"""The model store: find local MLX models, describe them, resolve and load them.

Finding and describing models reads only config.json and safetensors headers,
so listing is instant and imports no MLX; loading goes through mlx-lm.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.files import folder_size
from lora_tui.core.models.folders import HUB_ID, hf_hub_cache, is_model_dir
from lora_tui.core.models.hub import pull_model


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    source: str  # "lora-tui", "hf-cache", "lm-studio" or "folder"
    architecture: str
    parameters: int
    quantization: dict | None  # {"bits": 4, "group_size": 32} or None
    size_bytes: int
    has_chat_template: bool

    def to_json(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    @property
    def quantization_label(self) -> str:
        if not self.quantization:
            return "none"
        return f"{self.quantization['bits']}-bit (group {self.quantization['group_size']})"


@dataclass(frozen=True)
class ModelRoot:
    folder: Path
    source: str
    depth: int  # how many folder levels below `folder` the model folders sit


def model_roots(models_dir: Path, extra_dirs: list[Path]) -> list[ModelRoot]:
    home = Path.home()
    roots = [ModelRoot(models_dir, "lora-tui", 1)]
    roots += [
        ModelRoot(folder, "lm-studio", 2)
        for folder in (home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models")
    ]
    roots += [ModelRoot(folder, "folder", 1) for folder in extra_dirs]
    return roots


def discover_models(models_dir: Path, extra_dirs: list[Path] = ()) -> list[ModelInfo]:
    """Every MLX-format model in lora-tui's store, the HF hub cache, LM Studio
    and the extra folders, in that order; unreadable folders are skipped."""
    found: list[ModelInfo] = []
    seen: set[Path] = set()
    for folder, name, source in _candidate_folders(models_dir, list(extra_dirs)):
        resolved = folder.resolve()
        if resolved in seen or not is_model_dir(folder):
            continue
        seen.add(resolved)
        try:
            found.append(describe_model(folder, name, source))
        except (OSError, ValueError, KeyError):
            continue
    return found


def _candidate_folders(models_dir: Path, extra_dirs: list[Path]):
    for root in model_roots(models_dir, extra_dirs):
        if not root.folder.is_dir():
            continue
        pattern = "/".join(["*"] * root.depth)
        for folder in sorted(root.folder.glob(pattern)):
            yield folder, folder.relative_to(root.folder).as_posix(), root.source
    hub = hf_hub_cache()
    if hub.is_dir():
        for repo in sorted(hub.glob("models--*")):
            snapshots = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
            if snapshots:
                yield snapshots[0], repo.name.removeprefix("models--").replace("--", "/"), "hf-cache"


def describe_model(path: Path, name: str | None = None, source: str = "folder") -> ModelInfo:
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    quantization = config.get("quantization") or config.get("quantization_config")
    if quantization and "bits" in quantization:
        quantization = {"bits": quantization["bits"], "group_size": quantization.get("group_size", 64)}
    else:
        quantization = None
    return ModelInfo(
        name=name or path.name,
        path=path,
        source=source,
        architecture=config.get("model_type", "unknown"),
        parameters=count_parameters(path, quantization),
        quantization=quantization,
        size_bytes=folder_size(path),
        has_chat_template=has_chat_template(path),
    )


def has_chat_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    config_file = path / "tokenizer_config.json"
    if not config_file.is_file():
        return False
    return bool(json.loads(config_file.read_text(encoding="utf-8")).get("chat_template"))


def safetensors_header(path: Path) -> dict:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return json.loads(handle.read(length))


def tensor_headers(path: Path) -> dict[str, dict]:
    """Every tensor's dtype and shape in a model folder's safetensors shards (no tensor is read)."""
    tensors: dict[str, dict] = {}
    for shard in sorted(Path(path).glob("*.safetensors")):
        tensors.update({k: v for k, v in safetensors_header(shard).items() if k != "__metadata__"})
    return tensors


def count_parameters(path: Path, quantization: dict | None) -> int:
    return count_tensor_parameters(tensor_headers(path), quantization)


def count_tensor_parameters(tensors: dict[str, dict], quantization: dict | None) -> int:
    """Parameters of the full-precision model, counted from safetensors headers.

    A quantized weight packs 32/bits values into each uint32; its scales and
    biases are quantization overhead, not parameters.
    """
    total = 0
    for key, info in tensors.items():
        count = 1
        for dim in info["shape"]:
            count *= dim
        base = key.rsplit(".", 1)[0]
        if key.endswith((".scales", ".biases")) and f"{base}.weight" in tensors and f"{base}.scales" in tensors:
            continue
        if info["dtype"] == "U32" and f"{base}.scales" in tensors:
            group_size = (quantization or {}).get("group_size", 64)
            inputs = tensors[f"{base}.scales"]["shape"][-1] * group_size
            count = count // info["shape"][-1] * inputs
        total += count
    return total


def resolve_model(spec: str, models_dir: Path, extra_dirs: list[Path] = ()) -> tuple[Path, str]:
    """A model name from `models list`, a model folder, or a hub id -> (a local folder, the model's name).

    The name is the one `models list` gives the folder, however the user named it; else `spec` itself.
    A hub id is downloaded through huggingface_hub (as mlx-lm does) when it is
    not already cached; with no connection that is one clear UserError.
    """
    models = discover_models(models_dir, extra_dirs)
    for model in models:
        if model.name == spec:
            return model.path, model.name
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir() or not is_model_dir(path):
            raise UserError(f"{path}: not a model folder (it needs config.json and *.safetensors weights).")
        resolved = path.resolve()
        return path, next((m.name for m in models if m.path.resolve() == resolved), spec)
    if HUB_ID.match(spec):
        return download_from_hub(spec), spec
    raise UserError(f"No model named {spec!r}: not in `lora-tui models list`, not a folder, not a hub id.")


def resolve_model_path(spec: str, models_dir: Path, extra_dirs: list[Path] = ()) -> Path:
    return resolve_model(spec, models_dir, extra_dirs)[0]


def download_from_hub(repo_id: str) -> Path:
    """`repo_id` from the hub into its cache (as mlx-lm does), or a UserError in one sentence."""
    return pull_model(repo_id)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


def load_model(path: Path):
    """Load (model, tokenizer) through mlx-lm; a broken folder is a UserError."""
    from mlx_lm import load

    try:
        return load(str(path))
    except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot load this model ({_first_line(exc)}).") from None


def check_family(path: Path) -> None:
    """Refuse, before anything is written, a model whose family mlx-lm has no class for."""
    import importlib.util

    from mlx_lm.utils import MODEL_REMAPPING

    try:
        model_type = json.loads((Path(path) / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return  # load_model says what is wrong with the folder
    if not isinstance(model_type, str):
        return
    module = MODEL_REMAPPING.get(model_type, model_type)
    try:
        found = importlib.util.find_spec(f"mlx_lm.models.{module}") is not None
    except (ImportError, ValueError):  # a model_type that is no module name at all
        found = False
    if not found:
        raise UserError(
            f"{path}: mlx-lm has no model class for the {model_type!r} family, so it cannot be trained or chatted "
            "with here; a newer mlx-lm may have it (pip install -U mlx-lm)."
        )


def is_quantized(model) -> bool:
    import mlx.nn as nn

    return any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for _, m in model.named_modules())


def expand_for_cpu(model) -> bool:
    """On MLX's CPU backend, give the model float32 weights, when memory allows; True if it changed.

    The CPU has no fast kernels for quantized or half-precision products: on the 4-bit demo model float32
    decodes 2.1x faster and reads a prompt 14x faster (bench/chat.py). On Metal nothing changes.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_map

    if mx.default_device() != mx.cpu:
        return False
    quantized = is_quantized(model)
    half = any(w.dtype in (mx.float16, mx.bfloat16) for _, w in tree_flatten(model.parameters()))
    if not expands_on_cpu(quantized, half, _float32_bytes(model)):
        return False
    if quantized:
        _dequantize_layer_by_layer(model)
    model.update(
        tree_map(lambda w: w.astype(mx.float32) if w.dtype in (mx.float16, mx.bfloat16) else w, model.parameters())
    )
    mx.eval(model.parameters())
    return True


def _dequantize_layer_by_layer(model) -> None:
    """Each quantized layer replaced by a float32 one, one at a time, so that the quantized copy goes as its
    float32 twin comes: the peak stays under the two copies (dequantizing all at once held a third copy of
    some layers, measured on Gemma 3 270M). Scales go to float32 first: dequantized straight to float32, 4x faster."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_unflatten
    from mlx_lm.models.switch_layers import QuantizedSwitchLinear, SwitchLinear

    kinds = {nn.QuantizedLinear: nn.Linear, nn.QuantizedEmbedding: nn.Embedding, QuantizedSwitchLinear: SwitchLinear}
    quantized = {name: module for name, module in model.named_modules() if type(module) in kinds}
    for name in list(quantized):
        twin = _float32_twin(quantized.pop(name), kinds)  # popped: the quantized layer is freed once replaced
        model.update_modules(tree_unflatten([(name, twin)]))
        mx.eval(twin.parameters())


def _float32_twin(module, kinds: dict):
    """A quantized layer's float32 twin (its weight lazily dequantized)."""
    import mlx.core as mx
    import mlx.nn as nn

    biases = module.get("biases")
    weight = mx.dequantize(
        module.weight,
        module.scales.astype(mx.float32),
        None if biases is None else biases.astype(mx.float32),
        module.group_size,
        module.bits,
        module.mode,
    )
    has_bias = "bias" in module
    twin = kinds[type(module)](
        *weight.shape[::-1], **({} if isinstance(module, nn.QuantizedEmbedding) else {"bias": has_bias})
    )
    twin.weight = weight
    if has_bias:
        twin.bias = module.bias
    return twin


def expands_on_cpu(quantized: bool, half: bool, float32_bytes: int) -> bool:
    """Whether expand_for_cpu turns such a model into float32: quantized or half-precision weights whose
    float32 copy takes at most half this machine's memory."""
    return (quantized or half) and float32_bytes <= physical_memory() // 2


def _float32_bytes(model) -> int:
    """Bytes of the model's weights in float32 (quantized weights counted unpacked; their scales vanish)."""
    total = 0
    for _, module in model.named_modules():
        weight = module.get("weight")
        if weight is not None:
            packed = module.get("scales") is not None
            total += weight.size * (32 // module.bits if packed else 1) * 4
    return total


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
