"""The `lora-tui` command: the TUI with no arguments, subcommands for scripts.

Exit codes: 0 success, 1 a user error (one sentence on stderr, no traceback),
2 a usage error (argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from lora_tui import __version__
from lora_tui.core.training import params
from lora_tui.core.errors import UserError
from lora_tui.core.locations import Locations
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
    from lora_tui.core.models.store import discover_models
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
    from lora_tui.core.models.demo import ensure_demo_model

    context.locations.ensure()
    path = ensure_demo_model(context.locations.models_dir, context.locations.cache_dir, log=say)
    print(path)
    return 0


def models_import_gguf(args, context: Context) -> int:
    from lora_tui.core.models.gguf_import import import_gguf

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


# data --------------------------------------------------------------------------


def data_check(args, context: Context) -> int:
    from lora_tui.core.data.check import check_dataset

    counter = None
    if args.model:
        from lora_tui.core.models.store import resolve_model_path
        from lora_tui.core.data.tokens import load_token_counter

        counter = load_token_counter(resolve_model_path(args.model, context.locations.models_dir, context.extra_model_dirs()))
    report = check_dataset(args.file, counter, args.max_seq_length)
    if args.json:
        print_json(report.to_json())
    else:
        _print_report(report)
    return 0 if report.ok else 1


def _print_report(report) -> None:
    from lora_tui.core.units import human_count

    print(f"{report.path}: {report.format or 'unknown format'}, {report.valid_records} valid of {report.records} records")
    for error in report.errors:
        where = f"{error.file}, " if error.file else ""
        print(f"  error   {where}line {error.line}: {error.message}")
    if report.error_count > len(report.errors):
        print(f"  ... and {report.error_count - len(report.errors)} more errors")
    for warning in report.warnings:
        print(f"  warning line {warning.line} [{warning.kind}]: {warning.message}")
    if report.tokens is not None:
        t = report.tokens.to_json()
        print(f"tokens ({t['tokenizer']}): total {human_count(t['total'])}, min {t['min']}, median {t['median']:.0f}, "
              f"p75 {t['p75']:.0f}, p95 {t['p95']:.0f}, max {t['max']}, mean {t['mean']:.1f}")
        print(f"  {t['over_limit']} records over the max sequence length of {t['max_seq_length']}")
        rows = report.tokens.histogram()
        peak = max((count for _, _, count in rows), default=0) or 1
        for low, high, count in rows:
            print(f"  {low:>7}-{high:<7} {'#' * round(30 * count / peak):<30} {count}")


def data_split(args, context: Context) -> int:
    from lora_tui.core.data.split import split_dataset

    counts = split_dataset(args.file, args.out, args.valid_fraction, args.test_fraction, args.seed)
    for name, count in counts.items():
        print(f"{args.out}/{name}.jsonl: {count} records")
    return 0


def _redactor(context: Context, categories: list[str] | None):
    from lora_tui.core.data.pii import make_redactor

    return make_redactor(context.settings.spacy_pipeline, categories)


def data_redact(args, context: Context) -> int:
    from lora_tui.core.data.pii import redact_file

    result = redact_file(args.file, args.out, _redactor(context, args.categories)).to_json()
    if args.json:
        print_json(result)
        return 0
    print(f"{result['output']}: {result['records']} records")
    for category, count in result["redacted"].items():
        print(f"  {category:<12} {count}")
    if result["note"]:
        say(result["note"])
    return 0


def data_from_docs(args, context: Context) -> int:
    from lora_tui.core.data.documents import ModelTokens, documents_to_jsonl

    counter = None
    if args.model:
        from transformers import AutoTokenizer

        from lora_tui.core.models.store import resolve_model_path

        path = resolve_model_path(args.model, context.locations.models_dir, context.extra_model_dirs())
        counter = ModelTokens(AutoTokenizer.from_pretrained(str(path)))
    else:
        say("No --model given: --chunk-tokens counts words.")
    redactor = _redactor(context, args.redact_categories) if args.redact else None
    summary = documents_to_jsonl(args.paths, args.out, args.chunking, args.chunk_tokens, counter, redactor)
    print(f"{summary['output']}: {summary['records']} records from {summary['documents']} documents")
    if redactor is not None and redactor.skipped_categories:
        from lora_tui.core.data.pii import NER_SKIPPED_NOTE

        say(NER_SKIPPED_NOTE)
    return 0


def _add_data_commands(commands) -> None:
    data = commands.add_parser("data", help="check and prepare datasets")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    check = sub.add_parser("check", help="validate every line, lint, and count tokens")
    check.add_argument("file", help="a .jsonl or .txt file, or a folder with train.jsonl")
    check.add_argument("--model", help="count tokens with this model's tokenizer and chat template")
    check.add_argument("--max-seq-length", type=int, default=2048, metavar="N")
    check.add_argument("--json", action="store_true", help="print one JSON document")
    check.set_defaults(handler=data_check)
    split = sub.add_parser("split", help="write train/valid(/test).jsonl")
    split.add_argument("file")
    split.add_argument("--out", required=True, metavar="DIR")
    split.add_argument("--valid-fraction", type=float, default=0.1, metavar="F")
    split.add_argument("--test-fraction", type=float, default=0.0, metavar="F")
    split.add_argument("--seed", type=int, default=0)
    split.set_defaults(handler=data_split)
    from lora_tui.core.data.documents import CHUNKINGS, DEFAULT_CHUNK_TOKENS
    from lora_tui.core.data.pii import CATEGORIES

    redact = sub.add_parser("redact", help="replace personal information with placeholders")
    redact.add_argument("file")
    redact.add_argument("--out", required=True, metavar="FILE", help="new file (the input is never overwritten)")
    redact.add_argument("--categories", nargs="+", choices=CATEGORIES, metavar="CATEGORY",
                        help=f"what to redact (default: all of {', '.join(CATEGORIES)})")
    redact.add_argument("--json", action="store_true", help="print one JSON document")
    redact.set_defaults(handler=data_redact)
    docs = sub.add_parser("from-docs", help="turn .txt, .md and .pdf documents into {\"text\"} records")
    docs.add_argument("paths", nargs="+", metavar="PATH")
    docs.add_argument("--out", required=True, metavar="FILE")
    docs.add_argument("--chunking", choices=CHUNKINGS, default="paragraphs")
    docs.add_argument("--chunk-tokens", type=int, default=DEFAULT_CHUNK_TOKENS, metavar="N")
    docs.add_argument("--model", help="measure chunks in this model's tokens (default: words)")
    docs.add_argument("--redact", action="store_true", help="redact personal information on the way")
    docs.add_argument("--redact-categories", nargs="+", choices=CATEGORIES, metavar="CATEGORY")
    docs.set_defaults(handler=data_from_docs)


# train -------------------------------------------------------------------------


def train(args, context: Context) -> int:
    from lora_tui.core.training import setup as training_setup
    from lora_tui.core.training.events import Cancelled, Finished

    hosts = _checked_hosts(args)  # before anything else, so nothing is written for a bad hostfile
    job, report = training_setup.prepare_job(
        locations=context.locations, extra_model_dirs=context.extra_model_dirs(), name=args.name, model=args.model,
        data=args.data, config=args.config, flags=params.from_arguments(args), resume=args.resume, overwrite=args.overwrite,
        valid_fraction=args.valid_fraction, log=say,
    )
    if report is not None:
        _print_report(report)
        say(f"lora-tui: {args.data} has errors; fix them before training.")
        return 1
    if args.estimate:
        return _print_estimate(job)
    outcome = training_setup.run_with_interrupt(
        job, listener=_print_event,
        on_stop_requested=lambda: print("\nStopping after this step and saving... (Ctrl-C again to abort without saving)", flush=True),
        run=_distributed_runner(job, hosts, args) if hosts else training_setup.run_training,
    )
    if isinstance(outcome, Finished):
        return 0
    return 130 if isinstance(outcome, Cancelled) else 1


def _checked_hosts(args) -> int:
    """How many ranks `--hosts`/`--ranks` ask for (0: one process), after checking the hostfile and the hosts."""
    from lora_tui.core.training import launch as distributed

    if args.ranks is not None:
        if args.ranks < 1:
            raise UserError("--ranks must be 1 or more.")
        return args.ranks if args.ranks > 1 else 0
    return len(distributed.check_hosts(Path(args.hosts))) if args.hosts else 0


def _distributed_runner(job, ranks: int, args):
    from functools import partial

    from lora_tui.core.training import launch as distributed

    distributed.check_batch_split(job.params.batch_size, ranks)
    command = distributed.launch_command(distributed.rank_spec(job), Path(args.hosts) if args.hosts else None,
                                         local_ranks=0 if args.hosts else ranks)
    say(f"Starting {ranks} ranks with mlx.launch (ring backend).")
    return partial(distributed.run_distributed, command=command)


def _print_estimate(job) -> int:
    from lora_tui.core.training.estimate import estimate_run
    from lora_tui.core.units import human_bytes, human_duration

    say("Measuring a few real training steps...")
    estimate = estimate_run(job)
    print(f"{human_duration(estimate.seconds_per_epoch)} per epoch ({estimate.steps_per_epoch} steps of "
          f"{estimate.seconds_per_step:.2f} s, {estimate.tokens_per_second:.0f} tok/s), "
          f"{human_duration(estimate.total_seconds)} for {estimate.epochs} epochs; peak memory "
          f"{human_bytes(estimate.peak_memory_bytes)} (measured over {estimate.steps_measured} steps; validation not included)")
    return 0


def _print_event(event) -> None:
    from lora_tui.core.units import human_bytes, human_duration

    kind = event.type
    if kind == "started":
        for note in event.notes:
            print(f"note: {note}", flush=True)
        print(f"started: {event.train_records} train / {event.valid_records} valid records, {event.total_steps} steps, "
              f"{event.trainable_parameters:,} trainable of {event.total_parameters:,} parameters", flush=True)
    elif kind == "step":
        print(f"step {event.step} epoch {event.epoch:.2f} loss {event.train_loss:.4f} lr {event.learning_rate:.2e} "
              f"{event.tokens_per_second:.0f} tok/s {event.iterations_per_second:.2f} it/s "
              f"peak {human_bytes(event.peak_memory_bytes)} eta {human_duration(event.eta_seconds)}", flush=True)
    elif kind == "validation":
        print(f"validation step {event.step} val_loss {event.val_loss:.4f}", flush=True)
    elif kind == "checkpoint":
        print(f"checkpoint step {event.step}: {event.path}", flush=True)
    elif kind == "finished":
        print(f"finished ({event.reason}) at step {event.step}: {event.adapter_path}", flush=True)
    elif kind == "cancelled":
        print(f"cancelled at step {event.step}; saved {event.adapter_path} (continue with --resume)", flush=True)
    elif kind == "failed":
        print(f"lora-tui: training failed: {event.reason} {event.advice}".rstrip(), file=sys.stderr, flush=True)


def _add_train_command(commands) -> None:
    train_parser = commands.add_parser("train", help="train a LoRA adapter (headless)")
    train_parser.add_argument("--model", help="model name, folder or hub id (not needed with --resume)")
    train_parser.add_argument("--data", help="a dataset file or a folder with train.jsonl (not needed with --resume)")
    train_parser.add_argument("--name", required=True, help="adapter name")
    train_parser.add_argument("--config", metavar="FILE.toml", help="training parameters; flags override it")
    train_parser.add_argument("--valid-fraction", type=float, metavar="F",
                              help="hold out this fraction of a single data file for validation (split kept in runs/NAME/)")
    where = train_parser.add_mutually_exclusive_group()
    where.add_argument("--hosts", metavar="HOSTFILE",
                       help="train on several machines: an mlx.launch hostfile (JSON); this machine first")
    where.add_argument("--ranks", type=int, metavar="N", help="train with N processes on this machine (data parallel)")
    train_parser.add_argument("--estimate", action="store_true",
                              help="measure a few real steps, print time per epoch and peak memory, and stop")
    again = train_parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue a cancelled or killed run from its last checkpoint")
    again.add_argument("--overwrite", action="store_true", help="replace an existing adapter of this name")
    params.add_arguments(train_parser.add_argument_group("training parameters"))
    train_parser.set_defaults(handler=train)


# adapters ----------------------------------------------------------------------


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def adapters_list(args, context: Context) -> int:
    from lora_tui.core.adapters.registry import list_adapters
    from lora_tui.core.units import human_bytes

    adapters = list_adapters(context.locations.adapters_dir)
    if args.json:
        print_json([a.to_json() for a in adapters])
        return 0
    if not adapters:
        say("No adapters yet: train one with `lora-tui train`.")
        return 0
    rows = [(a.name, a.base_model or "-", Path(a.dataset).name if a.dataset else "-", (a.created or "-")[:16],
             _fmt(a.final_train_loss), _fmt(a.best_val_loss), _fmt(a.rank), _fmt(a.epochs), _fmt(a.steps),
             _fmt(a.learning_rate, 2), human_bytes(a.size_bytes)) for a in adapters]
    print_table(("NAME", "BASE", "DATASET", "CREATED", "LOSS", "VAL", "RANK", "EPOCHS", "STEPS", "LR", "SIZE"), rows)
    return 0


def adapters_show(args, context: Context) -> int:
    from lora_tui.core.adapters.registry import get_adapter

    info = get_adapter(context.locations.adapters_dir, args.name).to_json()
    if args.json:
        print_json(info)
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key.replace('_', ' '):<{width}}  {_fmt(value)}")
    return 0


def adapters_rename(args, context: Context) -> int:
    from lora_tui.core.adapters.registry import rename_adapter

    print(rename_adapter(context.locations.adapters_dir, args.old, args.new))
    return 0


def adapters_delete(args, context: Context) -> int:
    from lora_tui.core.adapters.registry import adapter_path, delete_adapter

    path = adapter_path(context.locations.adapters_dir, args.name)
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


def _adapter_base(context: Context, name: str) -> Path:
    from lora_tui.core.adapters.registry import adapter_base_path, get_adapter

    return adapter_base_path(get_adapter(context.locations.adapters_dir, name), context.locations.models_dir,
                             context.extra_model_dirs())


def adapters_checkpoints(args, context: Context) -> int:
    from lora_tui.core.adapters.registry import adapter_path, list_checkpoints

    checkpoints = list_checkpoints(adapter_path(context.locations.adapters_dir, args.name))
    if args.json:
        print_json([{"name": c.name, "step": c.step, "val_loss": c.val_loss, "path": str(c.path)} for c in checkpoints])
    elif not checkpoints:
        say(f"{args.name} has no checkpoints.")
    else:
        print_table(("CHECKPOINT", "STEP", "VAL LOSS"), [(c.name, str(c.step), _fmt(c.val_loss)) for c in checkpoints])
    return 0


def adapters_promote(args, context: Context) -> int:
    from lora_tui.core.adapters.registry import promote_checkpoint

    chosen = promote_checkpoint(context.locations.adapters_dir, args.name, args.checkpoint)
    say(f"{args.name} now has the weights of {chosen.name} (step {chosen.step}).")
    return 0


def adapters_fuse(args, context: Context) -> int:
    from lora_tui.core.adapters.registry import fuse_adapter

    base = Path(args.model) if args.model else _adapter_base(context, args.name)
    print(fuse_adapter(context.locations.adapters_dir, args.name, base, Path(args.out), args.dequantize))
    return 0


def adapters_export(args, context: Context) -> int:
    from lora_tui.core.adapters.registry import export_peft

    print(export_peft(context.locations.adapters_dir, args.name, Path(args.out), args.base_model_name))
    return 0


def _add_adapters_commands(commands) -> None:
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
    export.add_argument("--format", required=True, choices=["peft"])
    export.add_argument("--out", required=True, metavar="DIR")
    export.add_argument("--base-model-name", help="the Hugging Face id of the base model, for PEFT's config")
    export.set_defaults(handler=adapters_export)


# chat --------------------------------------------------------------------------


def chat(args, context: Context) -> int:
    from lora_tui.core.inference.generate import Generator, GenerationStats, Sampling, Turn

    sampling = Sampling(temperature=args.temp, top_p=args.top_p, top_k=args.top_k, min_p=args.min_p,
                        repetition_penalty=args.repetition_penalty, max_tokens=args.max_tokens, seed=args.seed).check()
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
        say(f"[{stats.generated_tokens} tokens, {stats.tokens_per_second:.1f} tok/s, "
            f"first token {stats.time_to_first_token:.2f} s]")

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
    from lora_tui.core.adapters.registry import adapter_base_path, adapter_path, describe_adapter
    from lora_tui.core.models.store import resolve_model_path

    models_dir, extra_dirs = context.locations.models_dir, context.extra_model_dirs()
    adapter = adapter_path(context.locations.adapters_dir, args.adapter) if args.adapter else None
    if args.model:
        return resolve_model_path(args.model, models_dir, extra_dirs), args.model, adapter
    if adapter is None:
        raise UserError("Name a model (--model M), an adapter (--adapter NAME), or both.")
    info = describe_adapter(adapter)
    return adapter_base_path(info, models_dir, extra_dirs), info.base_model or "", adapter


def _add_chat_command(commands) -> None:
    from lora_tui.core.inference.generate import Sampling

    defaults = Sampling()
    chat_parser = commands.add_parser("chat", help="chat with a model or model + adapter (streams to stdout)")
    chat_parser.add_argument("--model", help="base model: a name from `lora-tui models list`, a folder or a hub id "
                                              "(default with --adapter: the adapter's base)")
    chat_parser.add_argument("--adapter", help="adapter name")
    chat_parser.add_argument("--prompt", help="one prompt, then exit (default: read lines until EOF)")
    chat_parser.add_argument("--system", help="system prompt")
    chat_parser.add_argument("--max-tokens", type=int, default=defaults.max_tokens, metavar="N",
                             help="most tokens per reply (default %(default)s)")
    chat_parser.add_argument("--temp", type=float, default=defaults.temperature, metavar="T",
                             help="sampling temperature; 0 is greedy (default %(default)s)")
    chat_parser.add_argument("--top-p", type=float, default=defaults.top_p, metavar="P", help="default %(default)s")
    chat_parser.add_argument("--top-k", type=int, default=defaults.top_k, metavar="K", help="default %(default)s")
    chat_parser.add_argument("--min-p", type=float, default=defaults.min_p, metavar="P", help="default %(default)s")
    chat_parser.add_argument("--repetition-penalty", type=float, default=defaults.repetition_penalty, metavar="R",
                             help="default %(default)s")
    chat_parser.add_argument("--seed", type=int, default=None, metavar="S", help="for repeatable sampling")
    chat_parser.set_defaults(handler=chat)


# entry point -------------------------------------------------------------------

COMMAND_GROUPS: list[Callable] = [
    _add_models_commands, _add_data_commands, _add_train_command, _add_adapters_commands, _add_chat_command,
]


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
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" notices
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
