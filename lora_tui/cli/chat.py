"""`lora-tui chat`: stream answers from a base model or an adapter to stdout."""

from __future__ import annotations

import sys
from pathlib import Path

from lora_tui.cli.output import Context, say
from lora_tui.core.adapters.registry import adapter_base_path, adapter_path, describe_adapter
from lora_tui.core.errors import UserError
from lora_tui.core.inference.generate import PLAIN_COMPLETION_NOTE, GenerationStats, Generator, Sampling, Turn
from lora_tui.core.models.store import resolve_model_path


def chat(args, context: Context) -> int:
    sampling = Sampling(
        temperature=args.temp,
        top_p=args.top_p,
        top_k=args.top_k,
        min_p=args.min_p,
        repetition_penalty=args.repetition_penalty,
        max_tokens=args.max_tokens,
        seed=args.seed,
        thinking=args.thinking,
    ).check()
    model_path, model_name, adapter = _chat_model(args, context)
    generator = Generator(model_path, model_name)
    if adapter is not None:
        generator.use_adapter(adapter)
    history: list[Turn] = []

    def answer(prompt: str) -> None:
        history.append(Turn("user", prompt))
        stats = GenerationStats()
        pieces = []
        for piece in generator.stream(history, sampling, args.system, stats=stats):
            pieces.append(piece)
            print(piece, end="", flush=True)
        print(flush=True)
        history.append(Turn("assistant", "".join(pieces)))
        say(
            f"[{stats.generated_tokens} tokens, {stats.tokens_per_second:.1f} tok/s, "
            f"first token {stats.time_to_first_token:.2f} s"
            + (f"; {PLAIN_COMPLETION_NOTE}]" if stats.plain_completion else "]")
        )

    if args.prompt is not None:
        answer(args.prompt)
        return 0
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            return 0
        if line.strip():
            answer(line)


def _chat_model(args, context: Context) -> tuple[Path, str, Path | None]:
    """The base model's folder and name, and the adapter's folder; the base defaults to the adapter's own."""
    models_dir, extra_dirs = context.locations.models_dir, context.extra_model_dirs()
    adapter = adapter_path(context.locations.adapters_dir, args.adapter) if args.adapter else None
    if args.model:
        return resolve_model_path(args.model, models_dir, extra_dirs), args.model, adapter
    if adapter is None:
        raise UserError("Name a model (--model M), an adapter (--adapter NAME), or both.")
    info = describe_adapter(adapter)
    return adapter_base_path(info, models_dir, extra_dirs), info.base_model or "", adapter


def add_commands(commands) -> None:
    defaults = Sampling()
    chat_parser = commands.add_parser("chat", help="chat with a model or model + adapter (streams to stdout)")
    chat_parser.add_argument(
        "--model",
        help="base model: a name from `lora-tui models list`, a folder or a hub id "
        "(default with --adapter: the adapter's base)",
    )
    chat_parser.add_argument("--adapter", help="adapter name")
    chat_parser.add_argument("--prompt", help="one prompt, then exit (default: read lines until EOF)")
    chat_parser.add_argument("--system", help="system prompt")
    chat_parser.add_argument(
        "--max-tokens",
        type=int,
        default=defaults.max_tokens,
        metavar="N",
        help="most tokens per reply (default %(default)s)",
    )
    chat_parser.add_argument(
        "--temp",
        type=float,
        default=defaults.temperature,
        metavar="T",
        help="sampling temperature; 0 is greedy (default %(default)s)",
    )
    chat_parser.add_argument("--top-p", type=float, default=defaults.top_p, metavar="P", help="default %(default)s")
    chat_parser.add_argument("--top-k", type=int, default=defaults.top_k, metavar="K", help="default %(default)s")
    chat_parser.add_argument("--min-p", type=float, default=defaults.min_p, metavar="P", help="default %(default)s")
    chat_parser.add_argument(
        "--repetition-penalty", type=float, default=defaults.repetition_penalty, metavar="R", help="default %(default)s"
    )
    chat_parser.add_argument("--seed", type=int, default=None, metavar="S", help="for repeatable sampling")
    chat_parser.add_argument(
        "--thinking",
        action="store_true",
        help="let a model whose chat template has a thinking switch (Qwen3) think before it answers (default: off)",
    )
    chat_parser.set_defaults(handler=chat)
