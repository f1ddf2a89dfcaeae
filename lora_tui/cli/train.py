"""`lora-tui train`: a headless run, on this machine or across several."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from lora_tui.cli.output import Context, say
from lora_tui.core.data.columns import SavedColumns, format_columns
from lora_tui.core.errors import UserError
from lora_tui.core.training import launch, params
from lora_tui.core.training.estimate import estimate_run
from lora_tui.core.training.events import Cancelled, Event, Failed, Finished, describe
from lora_tui.core.training.loop import run_training
from lora_tui.core.training.ranks import check_batch_split
from lora_tui.core.training.setup import prepare_job, run_with_interrupt


def train(args, context: Context) -> int:
    ranks = _checked_ranks(args)  # before anything else, so nothing is written for a bad hostfile
    flags = params.from_arguments(args)
    if args.data and not args.resume and "columns" not in flags:
        saved = SavedColumns(context.locations.column_maps_file).get(Path(args.data))
        if saved:
            say(f"{args.data}: reading it with the column mapping saved in the app ({format_columns(saved)}).")
            flags["columns"] = format_columns(saved)
    job, report = prepare_job(
        locations=context.locations,
        extra_model_dirs=context.extra_model_dirs(),
        name=args.name,
        model=args.model,
        data=args.data,
        config=args.config,
        flags=flags,
        preset=args.preset,
        resume=args.resume,
        overwrite=args.overwrite,
        valid_fraction=args.valid_fraction,
        log=say,
        from_adapter=args.from_adapter,
    )
    if report is not None:
        print("\n".join(report.describe()))
        say(f"lora-tui: {args.data} has errors; fix them before training.")
        return 1
    if args.estimate:
        say("Measuring a few real training steps...")
        print(estimate_run(job).describe())
        return 0
    outcome = run_with_interrupt(
        job,
        listener=_print_event,
        on_stop_requested=lambda signal_name: print(
            f"\n{signal_name}: stopping after this step and saving... (Ctrl-C again to abort without saving)",
            flush=True,
        ),
        run=_distributed_runner(job, ranks, args) if ranks else run_training,
    )
    if isinstance(outcome, Finished):
        return 0
    return 130 if isinstance(outcome, Cancelled) else 1


def _checked_ranks(args) -> int:
    """How many ranks `--hosts`/`--ranks` ask for (0: one process), after checking the hostfile and the hosts."""
    if args.ranks is not None:
        if args.ranks < 1:
            raise UserError("--ranks must be 1 or more.")
        return args.ranks if args.ranks > 1 else 0
    return len(launch.check_hosts(Path(args.hosts))) if args.hosts else 0


def _distributed_runner(job, ranks: int, args):
    check_batch_split(job.params.batch_size, ranks)
    command = launch.launch_command(
        job, Path(args.hosts) if args.hosts else None, local_ranks=0 if args.hosts else ranks
    )
    say(f"Starting {ranks} ranks with mlx.launch (ring backend).")
    return partial(launch.run_distributed, command=command)


def _print_event(event: Event) -> None:
    if isinstance(event, Failed):
        print(f"lora-tui: {describe(event)}", file=sys.stderr, flush=True)
    else:
        print(describe(event), flush=True)


def _presets_help() -> str:
    return "presets (flags and --config override their values):\n" + "\n".join(
        f"  {preset.describe()}" for preset in params.PRESETS.values()
    )


def add_commands(commands) -> None:
    train_parser = commands.add_parser(
        "train",
        help="train a LoRA adapter (headless)",
        epilog=_presets_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train_parser.add_argument("--model", help="model name, folder or hub id (not needed with --resume)")
    train_parser.add_argument("--data", help="a dataset file or a folder with train.jsonl (not needed with --resume)")
    train_parser.add_argument("--name", required=True, help="adapter name")
    train_parser.add_argument("--preset", choices=list(params.PRESETS), help="start from a preset's values (see below)")
    train_parser.add_argument("--config", metavar="FILE.toml", help="training parameters; flags override it")
    train_parser.add_argument(
        "--from-adapter",
        metavar="NAME",
        help="start from this adapter's weights (its rank and projections); for DPO it is also the reference",
    )
    train_parser.add_argument(
        "--valid-fraction",
        type=float,
        metavar="F",
        help="hold out this fraction of a single data file for validation (split kept in runs/NAME/)",
    )
    where = train_parser.add_mutually_exclusive_group()
    where.add_argument(
        "--hosts",
        metavar="HOSTFILE",
        help="train on several machines: an mlx.launch hostfile (JSON); this machine first",
    )
    where.add_argument("--ranks", type=int, metavar="N", help="train with N processes on this machine (data parallel)")
    train_parser.add_argument(
        "--estimate",
        action="store_true",
        help="measure a few real steps, print time per epoch and peak memory, and stop",
    )
    again = train_parser.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", action="store_true", help="continue a cancelled or killed run from its last checkpoint"
    )
    again.add_argument("--overwrite", action="store_true", help="replace an existing adapter of this name")
    params.add_arguments(train_parser.add_argument_group("training parameters"))
    train_parser.set_defaults(handler=train)
