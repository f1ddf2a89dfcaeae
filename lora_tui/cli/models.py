"""`lora-tui models ...`: list, get the demo model, import GGUF files."""

from __future__ import annotations

from pathlib import Path

from lora_tui.cli.output import ByteProgress, Context, print_json, print_table, say
from lora_tui.core.adapters.gguf_export import WRITTEN_TYPES, check_type, export_gguf
from lora_tui.core.errors import UserError
from lora_tui.core.models.demo import ensure_demo_model
from lora_tui.core.models.gguf_import import import_gguf
from lora_tui.core.models.gguf_stores import StoredGGUF, discover_stored_ggufs, find_ollama_model
from lora_tui.core.models.hub import pull_model
from lora_tui.core.models.store import discover_models, resolve_model
from lora_tui.core.units import human_bytes, human_count


def models_list(args, context: Context) -> int:
    models = discover_models(context.locations.models_dir, context.extra_model_dirs())
    stored = discover_stored_ggufs()
    if args.json:
        print_json([{**model.to_json(), "format": "mlx"} for model in models] + [g.to_json() for g in stored])
        return 0
    if not models and not stored:
        say(
            "No models found. Get the demo model with `lora-tui models demo`, "
            "or import one with `lora-tui models import-gguf`."
        )
        return 0
    rows = [
        (
            m.name,
            m.architecture,
            human_count(m.parameters),
            m.quantization_label,
            human_bytes(m.size_bytes),
            "yes" if m.has_chat_template else "no",
            m.source,
        )
        for m in models
    ]
    rows += [
        (g.name, g.architecture, "-", f"GGUF {g.quantization}", human_bytes(g.size_bytes), "?", g.source)
        for g in stored
    ]
    print_table(("NAME", "ARCH", "PARAMS", "QUANTIZATION", "SIZE", "CHAT", "SOURCE"), rows)
    if stored:
        say("GGUF models from Ollama and LM Studio: `lora-tui models import-gguf NAME` makes an MLX model of one.")
    return 0


def models_demo(args, context: Context) -> int:
    context.locations.ensure()
    print(ensure_demo_model(context.locations.models_dir, context.locations.cache_dir, log=say))
    return 0


def models_import_gguf(args, context: Context) -> int:
    context.locations.ensure()
    source, name = Path(args.file).expanduser(), args.name
    if not source.exists():
        stored = _stored_gguf(args.file)
        source, name = stored.path, name or stored.import_name
    progress = ByteProgress(f"Converting {source.name}")
    print(import_gguf(source, context.locations.models_dir, name, log=say, progress=progress))
    return 0


def _stored_gguf(name: str) -> StoredGGUF:
    """A GGUF file by the name `models list` gives it (an Ollama or LM Studio name)."""
    for stored in discover_stored_ggufs():
        if stored.name == name:
            return stored
    if name.endswith(".gguf") or name.startswith(("/", ".", "~")):
        raise UserError(f"{name}: no such file.")
    return find_ollama_model(name)


def models_pull(args, context: Context) -> int:
    print(pull_model(args.repo, args.revision, progress=ByteProgress("Downloading"), log=say))
    return 0


def models_export(args, context: Context) -> int:
    path, name = resolve_model(args.model, context.locations.models_dir, context.extra_model_dirs())
    type_name = check_type(args.type)
    out = Path(args.out) if args.out else Path.cwd() / f"{Path(name).name}-{type_name}.gguf"
    print(export_gguf(path, out, None, type_name, name=Path(name).name, overwrite=args.overwrite, log=say))
    return 0


def add_commands(commands) -> None:
    models = commands.add_parser("models", help="find, import and get models")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="list local MLX models, and GGUF models in Ollama and LM Studio")
    listing.add_argument("--json", action="store_true", help="print one JSON document")
    listing.set_defaults(handler=models_list)
    sub.add_parser("demo", help="get SmolLM2-135M-Instruct; print its folder").set_defaults(handler=models_demo)
    gguf = sub.add_parser("import-gguf", help="turn a GGUF file into an MLX model")
    gguf.add_argument("file", help="a .gguf file, or an Ollama or LM Studio model's name from `models list`")
    gguf.add_argument("--name", help="name in the model store (default: from the file name)")
    gguf.set_defaults(handler=models_import_gguf)
    pull = sub.add_parser("pull", help="download a model from the Hugging Face hub (HF_ENDPOINT honoured)")
    pull.add_argument("repo", metavar="ORG/NAME", help="the hub id, e.g. mlx-community/SmolLM2-135M-Instruct")
    pull.add_argument("--revision", help="a branch, tag or commit (default: main)")
    pull.set_defaults(handler=models_pull)
    export = sub.add_parser("export", help="write a model as a GGUF file for llama.cpp, Ollama, LM Studio")
    export.add_argument("model", help="a name from `models list`, a folder or a hub id")
    export.add_argument("--format", default="gguf", choices=["gguf"])
    export.add_argument("--out", metavar="FILE", help="default: NAME-TYPE.gguf here")
    export.add_argument(
        "--type", default="f16", metavar="TYPE", help=f"tensor type: {', '.join(WRITTEN_TYPES)} (default %(default)s)"
    )
    export.add_argument("--overwrite", action="store_true", help="replace an existing file")
    export.set_defaults(handler=models_export)
