"""`lora-tui data ...`: check, split, redact, convert, documents to records."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from lora_tui.cli.output import Context, print_json, say
from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.columns import SavedColumns
from lora_tui.core.data.convert import convert_dataset, resolve_columns
from lora_tui.core.data.demo import GRPO_REWARDS, write_demo_dataset, write_demo_grpo, write_demo_pairs
from lora_tui.core.data.documents import CHUNKINGS, DEFAULT_CHUNK_TOKENS, ModelTokens, documents_to_jsonl
from lora_tui.core.data.masks import mask_summary, part_text, token_pieces
from lora_tui.core.data.pii import CATEGORIES, NER_SKIPPED_NOTE, make_redactor, redact_file
from lora_tui.core.data.records import record_at
from lora_tui.core.data.split import split_dataset
from lora_tui.core.data.synth import (
    DEFAULT_PAIRS_PER_CHUNK,
    DEFAULT_SYNTH_CHUNK_TOKENS,
    Synthesizer,
    SynthReport,
    check_outputs,
    document_chunks,
    sources_path,
    write_pairs,
)
from lora_tui.core.data.tokens import load_token_counter
from lora_tui.core.errors import UserError
from lora_tui.core.inference.generate import Generator
from lora_tui.core.models.store import resolve_model, resolve_model_path
from lora_tui.core.stopping import stop_on_signals
from lora_tui.core.units import counted

COLUMNS_HELP = (
    "which column (or field) holds which part of a record, e.g. prompt=question,completion=answer; parts: "
    "messages, text, prompt, completion, system, chosen, rejected, answer, instruction, input, output, tools"
)
DATASET_HELP = (
    "a .jsonl, .txt, .parquet, .csv, .tsv or .json file; a folder with train/valid/test files; a datasets "
    "save_to_disk folder; or a Hub dataset id in the Hugging Face cache"
)


def dataset_columns(args, context: Context, path) -> dict[str, str] | None:
    """--columns, else the mapping saved for the file in the app (said on stderr)."""
    mapping, note = resolve_columns(path, args.columns, SavedColumns(context.locations.column_maps_file))
    if note:
        say(note)
    return mapping


def data_check(args, context: Context) -> int:
    if args.show_mask is not None:
        return show_mask(args, context)
    counter = None
    if args.model:
        counter = load_token_counter(
            resolve_model_path(args.model, context.locations.models_dir, context.extra_model_dirs())
        )
    report = check_dataset(args.file, counter, args.max_seq_length, dataset_columns(args, context, args.file))
    if args.json:
        print_json(report.to_json())
    else:
        print("\n".join(report.describe()))
    return 0 if report.ok else 1


def show_mask(args, context: Context) -> int:
    """`data check FILE --model M --show-mask LINE`: the record as the model reads it, what trains, per part."""
    if not args.model:
        raise UserError("--show-mask needs --model: what trains depends on the model's chat template.")
    counter = load_token_counter(
        resolve_model_path(args.model, context.locations.models_dir, context.extra_model_dirs())
    )
    record = record_at(Path(args.file), args.show_mask, dataset_columns(args, context, args.file))
    masked = counter.mask(record)
    if args.json:
        print_json(token_pieces(counter.hf, masked))
        return 0
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    print(f"{record.where} as the model reads it: {mask_summary(masked)}")
    for part in masked.parts:
        state = "trained" if part.trained else "masked"
        print(_styled(f"── {part.label} · {counted(part.length, 'token')} · {state}", "1", colour))
        print(_styled(part_text(counter.hf, masked, part), "1;32" if part.trained else "2", colour))
    return 0


def _styled(text: str, sgr: str, colour: bool) -> str:
    return f"\x1b[{sgr}m{text}\x1b[0m" if colour else text


def data_split(args, context: Context) -> int:
    counts = split_dataset(
        args.file,
        args.out,
        args.valid_fraction,
        args.test_fraction,
        args.seed,
        dataset_columns(args, context, args.file),
    )
    for name, count in counts.items():
        print(f"{args.out}/{name}.jsonl: {count} records")
    return 0


def _redactor(context: Context, categories: list[str] | None):
    return make_redactor(context.settings.spacy_pipeline, categories)


def data_redact(args, context: Context) -> int:
    columns = dataset_columns(args, context, args.file)
    result = redact_file(args.file, args.out, _redactor(context, args.categories), columns).to_json()
    if args.json:
        print_json(result)
        return 0
    print(f"{result['output']}: {result['records']} records")
    for category, count in result["redacted"].items():
        print(f"  {category:<12} {count}")
    if result["note"]:
        say(result["note"])
    return 0


def data_convert(args, context: Context) -> int:
    converted = convert_dataset(args.file, args.out, dataset_columns(args, context, args.file))
    if args.json:
        print_json([part.to_json() for part in converted])
        return 0
    for part in converted:
        print(f"{part.output}: {part.records} {part.format} records")
    return 0


def data_synth(args, context: Context) -> int:
    out = Path(args.out).expanduser()
    check_outputs(out)
    model_path, model_name = resolve_model(args.model, context.locations.models_dir, context.extra_model_dirs())
    chunks = document_chunks(args.paths, args.chunking, args.chunk_tokens, ModelTokens.from_model(model_path))
    if args.max_chunks:
        chunks = chunks[: args.max_chunks]
    say(f"Loading {model_name} ...")
    synthesizer = Synthesizer(Generator(model_path, model_name), args.pairs_per_chunk, args.batch_size)
    say(f"Writing questions about {counted(len(chunks), 'chunk')} ({args.pairs_per_chunk} a chunk) ...")
    stop = threading.Event()
    with stop_on_signals(stop, second_aborts=False):  # Ctrl-C: stop after this batch and keep what was made
        report = synthesizer.run(chunks, stop, progress=_synth_progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    write_pairs(out, report.kept)
    if args.json:
        print_json({**report.to_json(), "output": str(out), "sources": str(sources_path(out))})
    else:
        dropped = ", ".join(f"{count} {why}" for why, count in report.dropped.items())
        print(f"{out}: {len(report.kept)} of {report.generated} pairs kept (dropped: {dropped})")
        print(f"{sources_path(out)}: the chunk each pair came from")
        print(f"{report.chunks_done} chunks in {report.seconds:.0f} s, {report.seconds_per_chunk:.1f} s a chunk")
    if report.cancelled:
        say(f"Stopped after {report.chunks_done} of {report.chunks} chunks; the pairs made so far are kept.")
        return 130
    return 0


def _synth_progress(report: SynthReport, width: int = 24) -> None:
    """A bar of the chunks done, redrawn in place on a terminal; a line each batch where stderr is a file."""
    filled = round(width * report.chunks_done / report.chunks) if report.chunks else width
    left = (report.chunks - report.chunks_done) * report.seconds_per_chunk
    line = (
        f"[{'#' * filled}{'.' * (width - filled)}] {report.chunks_done}/{report.chunks} chunks, "
        f"{counted(len(report.kept), 'pair')} kept, {report.seconds_per_chunk:.1f} s a chunk, ~{left:.0f} s left"
    )
    if sys.stderr.isatty():
        print(f"\r{line}", end="", file=sys.stderr, flush=True)
    else:
        say(line)


def data_from_docs(args, context: Context) -> int:
    counter = None
    if args.model:
        path = resolve_model_path(args.model, context.locations.models_dir, context.extra_model_dirs())
        counter = ModelTokens.from_model(path)
    else:
        say("No --model given: --chunk-tokens counts words.")
    redactor = _redactor(context, args.redact_categories) if args.redact else None
    summary = documents_to_jsonl(args.paths, args.out, args.chunking, args.chunk_tokens, counter, redactor)
    print(f"{summary['output']}: {summary['records']} records from {summary['documents']} documents")
    if redactor is not None and redactor.skipped_categories:
        say(NER_SKIPPED_NOTE)
    return 0


def data_demo(args, context: Context) -> int:
    if args.pairs and args.grpo:
        raise UserError("Choose one of --pairs and --grpo.")
    if args.grpo:
        counts, unit = write_demo_grpo(args.out), "prompts"
        method = " --preset grpo" + "".join(f" --reward {reward}" for reward in GRPO_REWARDS)
    elif args.pairs:
        counts, unit, method = write_demo_pairs(args.out), "pairs", " --preset preference"
    else:
        counts, unit, method = write_demo_dataset(args.out), "records", ""
    for name, count in counts.items():
        print(f"{args.out}/{name}.jsonl: {count} {unit}")
    say(f"Train on it: lora-tui train --model M --data {args.out} --name demo{method}")
    return 0


def add_commands(commands) -> None:
    data = commands.add_parser("data", help="check and prepare datasets")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    check = sub.add_parser("check", help="validate every line, lint, and count tokens")
    check.add_argument("file", help=DATASET_HELP)
    check.add_argument("--model", help="count tokens with this model's tokenizer and chat template")
    check.add_argument("--max-seq-length", type=int, default=2048, metavar="N")
    check.add_argument("--columns", metavar="KEY=COL,...", help=COLUMNS_HELP)
    check.add_argument("--json", action="store_true", help="print one JSON document")
    check.add_argument(
        "--show-mask",
        type=int,
        metavar="LINE",
        help="print the record on LINE as the model reads it: its parts, their tokens, trained or masked "
        "(needs --model; with --json, each token with whether it trains)",
    )
    check.set_defaults(handler=data_check)
    split = sub.add_parser("split", help="write train/valid(/test).jsonl")
    split.add_argument("file")
    split.add_argument("--out", required=True, metavar="DIR")
    split.add_argument("--valid-fraction", type=float, default=0.1, metavar="F")
    split.add_argument("--test-fraction", type=float, default=0.0, metavar="F")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--columns", metavar="KEY=COL,...", help=COLUMNS_HELP)
    split.set_defaults(handler=data_split)
    redact = sub.add_parser("redact", help="replace personal information with placeholders")
    redact.add_argument("file")
    redact.add_argument("--out", required=True, metavar="FILE", help="new file (the input is never overwritten)")
    redact.add_argument(
        "--categories",
        nargs="+",
        choices=CATEGORIES,
        metavar="CATEGORY",
        help=f"what to redact (default: all of {', '.join(CATEGORIES)})",
    )
    redact.add_argument("--columns", metavar="KEY=COL,...", help=COLUMNS_HELP)
    redact.add_argument("--json", action="store_true", help="print one JSON document")
    redact.set_defaults(handler=data_redact)
    convert = sub.add_parser("convert", help="write any dataset read here as JSONL records of its format")
    convert.add_argument("file", help=DATASET_HELP)
    convert.add_argument(
        "--out", required=True, metavar="FILE.jsonl", help="a new .jsonl file (a new folder for several splits)"
    )
    convert.add_argument("--columns", metavar="KEY=COL,...", help=COLUMNS_HELP)
    convert.add_argument("--json", action="store_true", help="print one JSON document")
    convert.set_defaults(handler=data_convert)
    docs = sub.add_parser("from-docs", help='turn .txt, .md and .pdf documents into {"text"} records')
    docs.add_argument("paths", nargs="+", metavar="PATH")
    docs.add_argument("--out", required=True, metavar="FILE")
    docs.add_argument("--chunking", choices=CHUNKINGS, default="paragraphs")
    docs.add_argument("--chunk-tokens", type=int, default=DEFAULT_CHUNK_TOKENS, metavar="N")
    docs.add_argument("--model", help="measure chunks in this model's tokens (default: words)")
    docs.add_argument("--redact", action="store_true", help="redact personal information on the way")
    docs.add_argument("--redact-categories", nargs="+", choices=CATEGORIES, metavar="CATEGORY")
    docs.set_defaults(handler=data_from_docs)
    synth = sub.add_parser("synth", help="question-answer pairs from documents, written by a local chat model")
    synth.add_argument("paths", nargs="+", metavar="PATH", help=".txt, .md and .pdf documents, or folders of them")
    synth.add_argument("--model", required=True, help="the chat model that writes the pairs")
    synth.add_argument("--out", required=True, metavar="FILE.jsonl", help="a new file (and FILE.sources.jsonl)")
    synth.add_argument("--pairs-per-chunk", type=int, default=DEFAULT_PAIRS_PER_CHUNK, metavar="N")
    synth.add_argument("--chunking", choices=CHUNKINGS, default="paragraphs")
    synth.add_argument("--chunk-tokens", type=int, default=DEFAULT_SYNTH_CHUNK_TOKENS, metavar="N")
    synth.add_argument("--batch-size", type=int, default=8, metavar="N", help="chunks generated together")
    synth.add_argument("--max-chunks", type=int, metavar="N", help="only the first N chunks (a trial run)")
    synth.add_argument("--json", action="store_true", help="print one JSON document")
    synth.set_defaults(handler=data_synth)
    demo = sub.add_parser("demo", help="write a small made-up dataset (facts to learn; train/valid/test)")
    demo.add_argument("--out", required=True, metavar="DIR", help="a new folder")
    demo.add_argument(
        "--pairs", action="store_true", help="preference pairs instead (answers that end with a sign-off preferred)"
    )
    demo.add_argument(
        "--grpo", action="store_true", help="GRPO prompts with answers instead (opposites, rewarded brief and right)"
    )
    demo.set_defaults(handler=data_demo)
