"""`lora-tui eval`: loss and scored answers of the base and the adapter on held-out records."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

from lora_tui.cli.data import COLUMNS_HELP, dataset_columns
from lora_tui.cli.output import Context, print_json, print_table, say
from lora_tui.core.adapters.layout import read_metadata
from lora_tui.core.adapters.lock import AdapterBusy
from lora_tui.core.adapters.registry import adapter_base_path, get_adapter
from lora_tui.core.data.check import check_dataset
from lora_tui.core.errors import UserError
from lora_tui.core.evaluation.report import describe_rewards, describe_side_rewards, save_evaluation
from lora_tui.core.evaluation.run import eval_records, evaluate, held_out_data, measure_drift
from lora_tui.core.models.store import resolve_model_path
from lora_tui.core.stopping import stop_on_signals


def eval_command(args, context: Context) -> int:
    info = get_adapter(context.locations.adapters_dir, args.adapter) if args.adapter else None
    if info is None and not args.model:
        raise UserError("Name an adapter (--adapter NAME), a model (--model M), or both.")
    models_dir, extra = context.locations.models_dir, context.extra_model_dirs()
    model = (
        resolve_model_path(args.model, models_dir, extra) if args.model else adapter_base_path(info, models_dir, extra)
    )
    data = Path(args.data) if args.data else held_out_data(info)
    columns = dataset_columns(args, context, data)
    report = check_dataset(data, columns=columns)
    if not report.ok:
        print("\n".join(report.describe()))
        raise UserError(f"{data} has errors; fix them before evaluating.")
    data_file, records = eval_records(data, args.limit, columns)
    parameters = read_metadata(info.path).get("parameters", {}) if info else {}
    rewards = args.reward or parameters.get("rewards") or []
    if records and all(r.is_prompt for r in records) and not rewards:
        raise UserError(f"{data_file}: GRPO prompts are scored by rewards; give them with --reward NAME.")
    sides = [("base", None)] + ([("adapter", info.path)] if info else [])
    stop = threading.Event()
    with stop_on_signals(stop, second_aborts=False):  # Ctrl-C, SIGTERM, SIGHUP: stop after this batch
        say(f"Evaluating on {len(records)} records of {data_file} ...")
        evaluation = evaluate(
            model,
            records,
            sides,
            str(data_file),
            args.max_tokens,
            args.batch_size,
            parameters.get("max_seq_length", 2048),
            parameters.get("mask_prompt") is not False,
            stop,
            beta=parameters.get("beta", 0.1),
            rewards=rewards,
        )
        document = evaluation.to_json()
        if args.drift and info and not stop.is_set():
            say("Measuring drift on general prompts ...")
            document["drift"] = measure_drift(model, info.path, batch_size=args.batch_size, stop=stop)
    if stop.is_set():
        say("Interrupted: what was measured so far follows.")
    if args.json:  # the results first: a report that cannot be saved loses none of them
        print_json(document)
    else:
        _print_summary(document)
    if info is not None and not stop.is_set():
        _save(info.path, document)
    return 130 if stop.is_set() else 0


def _save(adapter_dir: Path, document: dict) -> None:
    try:
        say(f"Saved {save_evaluation(adapter_dir, document)}")
    except (AdapterBusy, UserError) as problem:
        say(f"Not saved in the adapter folder: {problem}")
    except OSError as error:
        reason = "the disk is full" if error.errno == errno.ENOSPC else (error.strerror or str(error))
        say(f"Not saved in {adapter_dir / 'evals'}: {reason}; the results are above.")


def _print_summary(document: dict) -> None:
    def shown(value, kind):
        if value is None:
            return "-"
        return {"share": f"{value:.0%}", "loss": f"{value:.4f}", "chrf": f"{value:.1f}", "f1": f"{value:.2f}"}[kind]

    rows = [
        (
            s["label"],
            shown(s["loss"], "loss"),
            shown(s["perplexity"], "chrf"),
            shown(s["exact"], "share"),
            shown(s["contained"], "share"),
            shown(s["token_f1"], "f1"),
            shown(s["chrf"], "chrf"),
            f"{s['tokens_per_second']:.0f}",
        )
        for s in document["summary"]
    ]
    print_table(("MODEL", "LOSS", "PPL", "EXACT", "CONTAINED", "F1", "CHRF", "TOK/S"), rows)
    print(f"regressions (the base right, the adapter not): {document['regressions']}")
    if "preference" in document:
        print(describe_rewards(document["preference"]))
    for side in document["summary"]:
        if side.get("rewards"):
            print(describe_side_rewards(side["label"], side["rewards"]))
    if "drift" in document:
        drift = document["drift"]
        print(
            f"drift from the base on {drift['prompts']} general prompts: {drift['drift']:.2f} "
            f"({drift['changed']} answers changed)"
        )
        if drift.get("known"):
            print(f"general facts the base knew, still answered right: {drift['kept']} of {drift['known']}")


def add_commands(commands) -> None:
    command = commands.add_parser("eval", help="held-out loss and scored answers, base against adapter")
    command.add_argument("--adapter", help="adapter name (its base is the model unless --model)")
    command.add_argument("--model", help="base model: a name, folder or hub id")
    command.add_argument(
        "--data",
        metavar="FILE|DIR",
        help="records to evaluate on (default: the adapter's test.jsonl, else valid.jsonl)",
    )
    command.add_argument("--columns", metavar="KEY=COL,...", help=COLUMNS_HELP)
    command.add_argument("--drift", action="store_true", help="also measure how far general answers moved")
    command.add_argument("--max-tokens", type=int, default=64, metavar="N", help="per answer (default %(default)s)")
    command.add_argument(
        "--batch-size", type=int, default=16, metavar="N", help="answers generated together (default %(default)s)"
    )
    command.add_argument("--limit", type=int, metavar="N", help="only the first N records")
    command.add_argument(
        "--reward",
        action="append",
        metavar="SPEC",
        help="GRPO prompts: a reward to score answers with, repeatable (default: the adapter's own)",
    )
    command.add_argument("--json", action="store_true", help="print one JSON document with every record")
    command.set_defaults(handler=eval_command)
