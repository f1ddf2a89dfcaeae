"""`lora-tui data ...`: check, split, redact, documents to records."""

from __future__ import annotations

from lora_tui.cli.output import Context, print_json, say
from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.demo import write_demo_dataset, write_demo_pairs
from lora_tui.core.data.documents import CHUNKINGS, DEFAULT_CHUNK_TOKENS, ModelTokens, documents_to_jsonl
from lora_tui.core.data.pii import CATEGORIES, NER_SKIPPED_NOTE, make_redactor, redact_file
from lora_tui.core.data.split import split_dataset
from lora_tui.core.data.tokens import load_token_counter
from lora_tui.core.models.store import resolve_model_path


def data_check(args, context: Context) -> int:
    counter = None
    if args.model:
        counter = load_token_counter(
            resolve_model_path(args.model, context.locations.models_dir, context.extra_model_dirs())
        )
    report = check_dataset(args.file, counter, args.max_seq_length)
    if args.json:
        print_json(report.to_json())
    else:
        print("\n".join(report.describe()))
    return 0 if report.ok else 1


def data_split(args, context: Context) -> int:
    counts = split_dataset(args.file, args.out, args.valid_fraction, args.test_fraction, args.seed)
    for name, count in counts.items():
        print(f"{args.out}/{name}.jsonl: {count} records")
    return 0


def _redactor(context: Context, categories: list[str] | None):
    return make_redactor(context.settings.spacy_pipeline, categories)


def data_redact(args, context: Context) -> int:
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
    counts = write_demo_pairs(args.out) if args.pairs else write_demo_dataset(args.out)
    for name, count in counts.items():
        print(f"{args.out}/{name}.jsonl: {count} {'pairs' if args.pairs else 'records'}")
    method = " --preset preference" if args.pairs else ""
    say(f"Train on it: lora-tui train --model M --data {args.out} --name demo{method}")
    return 0


def add_commands(commands) -> None:
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
    redact.add_argument("--json", action="store_true", help="print one JSON document")
    redact.set_defaults(handler=data_redact)
    docs = sub.add_parser("from-docs", help='turn .txt, .md and .pdf documents into {"text"} records')
    docs.add_argument("paths", nargs="+", metavar="PATH")
    docs.add_argument("--out", required=True, metavar="FILE")
    docs.add_argument("--chunking", choices=CHUNKINGS, default="paragraphs")
    docs.add_argument("--chunk-tokens", type=int, default=DEFAULT_CHUNK_TOKENS, metavar="N")
    docs.add_argument("--model", help="measure chunks in this model's tokens (default: words)")
    docs.add_argument("--redact", action="store_true", help="redact personal information on the way")
    docs.add_argument("--redact-categories", nargs="+", choices=CATEGORIES, metavar="CATEGORY")
    docs.set_defaults(handler=data_from_docs)
    demo = sub.add_parser("demo", help="write a small made-up dataset (facts to learn; train/valid/test)")
    demo.add_argument("--out", required=True, metavar="DIR", help="a new folder")
    demo.add_argument(
        "--pairs", action="store_true", help="preference pairs instead (answers that end with a sign-off preferred)"
    )
    demo.set_defaults(handler=data_demo)
