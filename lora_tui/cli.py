"""The `lora-tui` command: the TUI with no arguments, subcommands for scripts.

Exit codes: 0 success, 1 a user error (one sentence on stderr, no traceback),
2 a usage error (argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from lora_tui import __version__
from lora_tui.core.errors import UserError
from lora_tui.locations import Locations
from lora_tui.settings import Settings


@dataclass
class Context:
    locations: Locations

    @cached_property
    def settings(self) -> Settings:
        return Settings.load(self.locations)

    def extra_model_dirs(self):
        return self.settings.extra_model_dirs()


def say(message: str) -> None:
    """Progress for people: stderr, so stdout stays clean for scripts."""
    print(message, file=sys.stderr, flush=True)


def print_json(document) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    for row in (headers, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


# models ----------------------------------------------------------------------


def models_list(args, context: Context) -> int:
    from lora_tui.core.models import discover_models
    from lora_tui.core.units import human_bytes, human_count

    models = discover_models(context.locations.models_dir, context.extra_model_dirs())
    if args.json:
        print_json([model.to_json() for model in models])
        return 0
    if not models:
        say("No models found. Get the demo model with `lora-tui models demo`, or import one with `lora-tui models import-gguf`.")
        return 0
    rows = [
        (m.name, m.architecture, human_count(m.parameters), m.quantization_label, human_bytes(m.size_bytes),
         "yes" if m.has_chat_template else "no", m.source)
        for m in models
    ]
    print_table(("NAME", "ARCH", "PARAMS", "QUANTIZATION", "SIZE", "CHAT", "SOURCE"), rows)
    return 0


def models_demo(args, context: Context) -> int:
    from lora_tui.core.demo import ensure_demo_model

    context.locations.ensure()
    path = ensure_demo_model(context.locations.models_dir, context.locations.cache_dir, log=say)
    print(path)
    return 0


def models_import_gguf(args, context: Context) -> int:
    from lora_tui.core.gguf_import import import_gguf

    context.locations.ensure()
    path = import_gguf(args.file, context.locations.models_dir, args.name, log=say)
    print(path)
    return 0


def _add_models_commands(commands) -> None:
    models = commands.add_parser("models", help="find, import and get models")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="list local MLX models")
    listing.add_argument("--json", action="store_true", help="print one JSON document")
    listing.set_defaults(handler=models_list)
    sub.add_parser("demo", help="get SmolLM2-135M-Instruct; print its folder").set_defaults(handler=models_demo)
    gguf = sub.add_parser("import-gguf", help="turn a GGUF file into an MLX model")
    gguf.add_argument("file", help="the .gguf file (from Ollama, LM Studio, ...)")
    gguf.add_argument("--name", help="name in the model store (default: from the file name)")
    gguf.set_defaults(handler=models_import_gguf)


# entry point -------------------------------------------------------------------

COMMAND_GROUPS: list[Callable] = [_add_models_commands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lora-tui",
        description="Fine-tune local language models with LoRA on MLX. With no command, opens the TUI.",
    )
    parser.add_argument("--version", action="version", version=f"lora-tui {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_group in COMMAND_GROUPS:
        add_group(commands)
    return parser


def run_tui(context: Context) -> int:
    from lora_tui.app import make_app

    make_app(context.locations, context.settings).run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    context = Context(Locations.from_environment())
    try:
        if args.command is None:
            return run_tui(context)
        return args.handler(args, context)
    except UserError as error:
        print(f"lora-tui: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lora-tui: interrupted", file=sys.stderr)
        return 130
