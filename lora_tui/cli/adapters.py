"""`lora-tui adapters ...`: list, show, rename, delete, checkpoints, promote, fuse, export."""

from __future__ import annotations

import sys
from pathlib import Path

from lora_tui.cli.output import Context, print_json, print_table, say, shown
from lora_tui.core.adapters.convert import fuse_adapter
from lora_tui.core.adapters.exports import FORMATS, ExportRequest, export_adapter
from lora_tui.core.adapters.gguf_export import WRITTEN_TYPES
from lora_tui.core.adapters.lock import refuse_if_busy
from lora_tui.core.adapters.registry import (
    adapter_base_path,
    adapter_folder,
    delete_adapter,
    find_adapter,
    get_adapter,
    list_adapters,
    list_checkpoints,
    promote_checkpoint,
    rename_adapter,
)
from lora_tui.core.errors import UserError
from lora_tui.core.units import human_bytes


def adapters_list(args, context: Context) -> int:
    adapters = list_adapters(context.locations.adapters_dir)
    if args.json:
        print_json([a.to_json() for a in adapters])
        return 0
    if not adapters:
        say("No adapters yet: train one with `lora-tui train`.")
        return 0
    rows = [
        (
            a.name,
            a.base_model or "-",
            Path(a.dataset).name if a.dataset else "-",
            (a.created or "-")[:16],
            shown(a.final_train_loss),
            shown(a.best_val_loss),
            shown(a.rank),
            shown(a.epochs),
            shown(a.steps),
            shown(a.learning_rate, 2),
            human_bytes(a.size_bytes),
            a.status or "-",
        )
        for a in adapters
    ]
    print_table(
        ("NAME", "BASE", "DATASET", "CREATED", "LOSS", "VAL", "RANK", "EPOCHS", "STEPS", "LR", "SIZE", "STATUS"), rows
    )
    for adapter in adapters:
        if adapter.problem:
            say(f"{adapter.status}: {adapter.problem}")
    return 0


def adapters_show(args, context: Context) -> int:
    info = find_adapter(context.locations.adapters_dir, args.name).to_json()
    if args.json:
        print_json(info)
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key.replace('_', ' '):<{width}}  {shown(value)}")
    return 0


def adapters_rename(args, context: Context) -> int:
    print(rename_adapter(context.locations.adapters_dir, args.old, args.new))
    return 0


def adapters_delete(args, context: Context) -> int:
    refuse_if_busy(context.locations.adapters_dir, args.name)  # before asking
    path = adapter_folder(context.locations.adapters_dir, args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"Not deleting {args.name!r}: no terminal to confirm on; add --yes.")
        answer = input(f"Delete the adapter {args.name!r} ({path})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            say("Not deleted.")
            return 1
    delete_adapter(context.locations.adapters_dir, args.name)
    say(f"Deleted {path}.")
    return 0


def adapters_checkpoints(args, context: Context) -> int:
    checkpoints = list_checkpoints(adapter_folder(context.locations.adapters_dir, args.name))
    if args.json:
        print_json([{"name": c.name, "step": c.step, "val_loss": c.val_loss, "path": str(c.path)} for c in checkpoints])
    elif not checkpoints:
        say(f"{args.name} has no checkpoints.")
    else:
        print_table(("CHECKPOINT", "STEP", "VAL LOSS"), [(c.name, str(c.step), shown(c.val_loss)) for c in checkpoints])
    return 0


def adapters_promote(args, context: Context) -> int:
    chosen = promote_checkpoint(context.locations.adapters_dir, args.name, args.checkpoint)
    say(f"{args.name} now has the weights of {chosen.name} (step {chosen.step}).")
    return 0


def adapters_fuse(args, context: Context) -> int:
    if args.model:
        base = Path(args.model)
    else:
        info = get_adapter(context.locations.adapters_dir, args.name)
        base = adapter_base_path(info, context.locations.models_dir, context.extra_model_dirs())
    print(fuse_adapter(context.locations.adapters_dir, args.name, base, Path(args.out), args.dequantize))
    return 0


def adapters_export(args, context: Context) -> int:
    info = get_adapter(context.locations.adapters_dir, args.name)
    request = ExportRequest(
        args.format,
        Path(args.out) if args.out else None,
        args.type,
        args.lora,
        args.base_model_name,
        args.overwrite,
        verify=not args.no_verify,
    )
    exported = export_adapter(info, request, context.locations, context.extra_model_dirs(), Path.cwd(), log=say)
    say(f"Use it: {exported.how_to_use}")
    print(exported.path)
    return 0


def add_commands(commands) -> None:
    adapters = commands.add_parser("adapters", help="list, inspect and manage adapters")
    sub = adapters.add_subparsers(dest="adapters_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="every adapter with its metadata")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=adapters_list)
    show = sub.add_parser("show", help="one adapter's metadata")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=adapters_show)
    rename = sub.add_parser("rename", help="rename an adapter")
    rename.add_argument("old")
    rename.add_argument("new")
    rename.set_defaults(handler=adapters_rename)
    delete = sub.add_parser("delete", help="delete an adapter (asks first)")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask")
    delete.set_defaults(handler=adapters_delete)
    checkpoints = sub.add_parser("checkpoints", help="an adapter's saved checkpoints")
    checkpoints.add_argument("name")
    checkpoints.add_argument("--json", action="store_true")
    checkpoints.set_defaults(handler=adapters_checkpoints)
    promote = sub.add_parser("promote", help="make a checkpoint's weights the adapter's own")
    promote.add_argument("name")
    promote.add_argument("checkpoint", help="a name from `adapters checkpoints`, e.g. step-0000040")
    promote.set_defaults(handler=adapters_promote)
    fuse = sub.add_parser("fuse", help="merge an adapter into its base model")
    fuse.add_argument("name")
    fuse.add_argument("--out", required=True, metavar="DIR")
    fuse.add_argument("--model", help="the base model folder (default: the one the adapter records)")
    fuse.add_argument("--dequantize", action="store_true", help="write a full-precision model")
    fuse.set_defaults(handler=adapters_fuse)
    export = sub.add_parser("export", help="export an adapter for other tools")
    export.add_argument("name")
    export.add_argument(
        "--format",
        required=True,
        choices=list(FORMATS),
        help="peft: the adapter for Hugging Face PEFT; gguf: base + adapter merged, for llama.cpp; "
        "gguf-lora: the adapter alone, for llama.cpp's --lora on a GGUF of the base; "
        "ollama: a folder with GGUF and Modelfile; lmstudio: the merged MLX model in LM Studio's models folder",
    )
    export.add_argument("--out", metavar="PATH", help="default: NAME-peft/, NAME-TYPE.gguf or NAME-lora.gguf here")
    export.add_argument(
        "--type",
        metavar="TYPE",
        help=f"GGUF tensor type: {', '.join(WRITTEN_TYPES)} (default f16; q8_0 for ollama)",
    )
    export.add_argument("--lora", action="store_true", help="ollama: the base and the adapter as two files, not merged")
    export.add_argument("--overwrite", action="store_true", help="replace an existing GGUF file")
    export.add_argument(
        "--no-verify",
        action="store_true",
        help="GGUF formats: skip reading the file back in llama.cpp to compare it with the adapter in MLX",
    )
    export.add_argument("--base-model-name", help="the Hugging Face id of the base model, for PEFT's config")
    export.set_defaults(handler=adapters_export)
