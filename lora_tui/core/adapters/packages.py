"""Export folders for the apps people run models in: Ollama and LM Studio, each with a model card.

An Ollama folder holds the GGUF file(s) and a Modelfile: FROM the model (fused, or the base with
the adapter as an ADAPTER), a TEMPLATE in Ollama's syntax for the common chat formats, the stop
tokens, lora-tui's sampling defaults and the system prompt the adapter was trained with, if one.
An LM Studio export is the fused MLX model in LM Studio's models folder, under a lora-tui
publisher folder, where its MLX engine runs it on a Mac.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from lora_tui.core.adapters.card import write_card
from lora_tui.core.adapters.convert import fuse_adapter
from lora_tui.core.adapters.gguf_export import export_gguf, export_lora_gguf
from lora_tui.core.adapters.registry import AdapterInfo
from lora_tui.core.data.records import load_records
from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_write_text, building_dir
from lora_tui.core.inference.generate import Sampling

LMSTUDIO_MODELS = Path.home() / ".lmstudio" / "models"
LMSTUDIO_PUBLISHER = "lora-tui"

# (marker in the Jinja chat template, Ollama TEMPLATE, stop tokens)
_CHAT_FORMATS = (
    (
        "<|im_start|>",
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
        "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n",
        ("<|im_start|>", "<|im_end|>"),
    ),
    (
        "<|start_header_id|>",
        "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
        "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
        "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>",
        ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    ),
    (
        "[INST]",
        "[INST] {{ if .System }}{{ .System }} {{ end }}{{ .Prompt }} [/INST]{{ .Response }}",
        ("[INST]", "[/INST]"),
    ),
)


def export_ollama(
    info: AdapterInfo,
    base_path: Path,
    out: Path,
    type_name: str = "q8_0",
    as_lora: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """A folder Ollama builds a model from with `ollama create NAME -f OUT/Modelfile` (run here when ollama is
    installed)."""
    out = Path(out)
    if out.exists():
        raise UserError(f"{out} already exists; choose another --out.")
    with building_dir(out) as staging:
        if as_lora:
            export_gguf(base_path, staging / "base.gguf", None, type_name, name=base_path.name, log=log)
            export_lora_gguf(info.path, base_path, staging / "adapter.gguf", log=log)
            model_lines = ["FROM ./base.gguf", "ADAPTER ./adapter.gguf"]
        else:
            export_gguf(base_path, staging / "model.gguf", info.path, type_name, name=info.name, log=log)
            model_lines = ["FROM ./model.gguf"]
        atomic_write_text(staging / "Modelfile", modelfile(model_lines, base_path, training_system_prompt(info)))
        write_card(staging, info, "gguf", f"Ollama ({'base + LoRA adapter' if as_lora else 'merged'}, {type_name})")
    command = ["ollama", "create", _ollama_name(info.name), "-f", str(out / "Modelfile")]
    log("Make it an Ollama model with:  " + " ".join(command))
    if shutil.which("ollama"):
        result = subprocess.run(command, capture_output=True, text=True)
        log(result.stdout.strip() or result.stderr.strip() or f"ollama exited with {result.returncode}")
    return out


def modelfile(model_lines: list[str], base_path: Path, system: str | None) -> str:
    lines = [*model_lines, ""]
    chat_format = _chat_format(base_path)
    if chat_format is None:
        lines.append("# No TEMPLATE: Ollama reads the chat template inside the GGUF file.")
    else:
        template, stops = chat_format
        lines.append(f'TEMPLATE """{template}"""')
        lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    defaults = Sampling()
    lines += [
        f"PARAMETER temperature {defaults.temperature}",
        f"PARAMETER top_p {defaults.top_p}",
        f"PARAMETER top_k {defaults.top_k}",
    ]
    if system:
        lines.append(f'SYSTEM """{system}"""')
    return "\n".join(lines) + "\n"


def _chat_format(base_path: Path) -> tuple[str, tuple[str, ...]] | None:
    try:
        template = json.loads((base_path / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template")
    except (OSError, ValueError):
        template = None
    if not isinstance(template, str):
        jinja = base_path / "chat_template.jinja"
        template = jinja.read_text(encoding="utf-8") if jinja.is_file() else ""
    for marker, ollama_template, stops in _CHAT_FORMATS:
        if marker in template:
            return ollama_template, stops
    return None


def training_system_prompt(info: AdapterInfo) -> str | None:
    """The system prompt every training record shares, if they all have the same one."""
    if not info.dataset:
        return None
    data = Path(info.dataset)
    train_file = data / "train.jsonl" if data.is_dir() else data
    try:
        records = load_records(train_file)
    except (UserError, OSError):
        return None
    systems = {
        r.messages[0]["content"] if r.is_chat and r.messages and r.messages[0]["role"] == "system" else None
        for r in records
    }
    return systems.pop() if len(systems) == 1 else None


def _ollama_name(name: str) -> str:
    return name.strip().lower().replace(" ", "-")


def export_lmstudio(
    info: AdapterInfo,
    base_path: Path,
    adapters_dir: Path,
    out: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """The fused MLX model in LM Studio's models folder (lora-tui/NAME), or in `out`."""
    out = Path(out) if out else LMSTUDIO_MODELS / LMSTUDIO_PUBLISHER / info.name.replace(" ", "-")
    fuse_adapter(adapters_dir, info.name, base_path, out)
    write_card(out, info, "mlx", "LM Studio (MLX engine)")
    log(
        f"LM Studio lists it under {LMSTUDIO_PUBLISHER}/{out.name} (My Models) "
        f"when {out.parent.parent} is its models folder."
    )
    return out
