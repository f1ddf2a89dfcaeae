"""`lora-tui train`: a headless run, on this machine or across several."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

from lora_tui.cli.output import Context, say
from lora_tui.core.adapters.layout import read_metadata, write_metadata
from lora_tui.core.data.columns import SavedColumns, format_columns
from lora_tui.core.errors import UserError
from lora_tui.core.training import launch, params
from lora_tui.core.training.estimate import estimate_run
from lora_tui.core.training.events import Cancelled, Event, Failed, Finished, describe
from lora_tui.core.training.loop import run_training
from lora_tui.core.training.queue import RunQueue
from lora_tui.core.training.ranks import check_batch_split
from lora_tui.core.training.rewards import reward_help
from lora_tui.core.training.setup import prepare_job, run_with_interrupt
from lora_tui.core.training.sweeps import expand_grid, parse_sweep
from lora_tui.core.units import counted


def train(args, context: Context) -> int:
    if args.sweep or args.queue:
        return sweep_or_queue(args, context)
    ranks = _checked_ranks(args)  # before anything else, so nothing is written for a bad hostfile
    job, report = _prepare(
        args,
        context,
        resume=args.resume,
        log=say,
        sweep=json.loads(args.sweep_of) if args.sweep_of else None,
        ranks=max(ranks, 1),
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
        if args.eval_after:
            _evaluate_after(job)
        return 0
    return 130 if isinstance(outcome, Cancelled) else 1


def _prepare(args, context: Context, **extra):
    """prepare_job for these train arguments (`extra`: resume, log, sweep, check_only)."""
    return prepare_job(
        locations=context.locations,
        extra_model_dirs=context.extra_model_dirs(),
        name=args.name,
        model=args.model,
        data=args.data,
        config=args.config,
        flags=_flags(args, context),
        preset=args.preset,
        overwrite=args.overwrite,
        valid_fraction=args.valid_fraction,
        from_adapter=args.from_adapter,
        **extra,
    )


def _flags(args, context: Context) -> dict:
    """The parameter flags given, with the column mapping saved in the app for the data when none is given."""
    flags = params.from_arguments(args)
    if args.data and not args.resume and "columns" not in flags:
        saved = SavedColumns(context.locations.column_maps_file).get(Path(args.data))
        if saved:
            say(f"{args.data}: reading it with the column mapping saved in the app ({format_columns(saved)}).")
            flags["columns"] = format_columns(saved)
    return flags


def _evaluate_after(job) -> None:
    """--eval-after: the adapter's held-out scores, kept in its metadata (what `sweep show` ranks ties by)."""
    from lora_tui.core.evaluation.run import eval_records, evaluate

    try:
        data_file, records = eval_records(job.data)
    except UserError as exc:
        say(f"Not evaluated: {exc}")
        return
    if data_file.name.startswith("train"):
        say("Not evaluated: the data has no test or validation split to evaluate on.")
        return
    say(f"Evaluating on {len(records)} held-out records of {data_file} ...")
    evaluation = evaluate(job.model_path, records, [("adapter", job.adapter_dir)], data_file.name, max_tokens=48)
    summary = evaluation.sides[0].summary(evaluation.references)
    meta = read_metadata(job.adapter_dir)
    write_metadata(job.adapter_dir, {**meta, "eval": {**summary, "data": str(data_file), "records": len(records)}})
    shown = ", ".join(f"{key} {value:.4g}" for key, value in summary.items() if isinstance(value, float))
    print(f"evaluated: {shown}", flush=True)


def sweep_or_queue(args, context: Context) -> int:
    """--sweep: every run of the grid checked, then run one after another (or, with --queue, queued);
    --queue alone: this one run, checked and queued."""
    if args.resume or args.estimate or args.hosts or args.ranks:
        raise UserError("--sweep and --queue start new runs on this machine: not with --resume, --estimate or --hosts.")
    flags = _flags(args, context)
    points = expand_grid(args.name, [parse_sweep(text) for text in args.sweep], flags) if args.sweep else []
    runs = [(point.name, _point_arguments(args, point)) for point in points] or [(args.name, _own_arguments(args))]
    queue = RunQueue(context.locations.data_dir)
    for _, run_args in runs:
        if not _checked(run_args, context, queue if args.queue else None):
            return 1
    if args.queue:
        for name, run_args in runs:
            job = queue.add(name, run_args, sweep=args.name if points else None)
            print(f"queued job {job.id}: {name}")
        say("Run them with: lora-tui queue run")
        return 0
    say(f"Sweep {args.name}: {counted(len(runs), 'run')}, one after another.")
    for number, (name, run_args) in enumerate(runs, start=1):
        say(f"Sweep {args.name}: run {number} of {len(runs)}, {name}")
        code = train(_parse_train(run_args), context)
        if code != 0:
            left = ", ".join(n for n, _ in runs[number:]) or "none"
            say(f"Sweep {args.name} stopped at {name} (exit {code}); not started: {left}.")
            return code
    say(f"Sweep {args.name} done: lora-tui sweep show {args.name}")
    return 0


def _checked(run_args: list[str], context: Context, queue: RunQueue | None) -> bool:
    """A run checked as `train` would check it, writing nothing; its errors printed as `train` prints them."""
    run = _parse_train(run_args)
    if queue is not None and any(job.name == run.name and job.status == "pending" for job in queue.jobs()):
        raise UserError(f"The queue already has a run named {run.name!r}; choose another name.")
    _, report = _prepare(run, context, check_only=True)
    if report is not None:
        print("\n".join(report.describe()))
        say(f"lora-tui: {run.data} has errors; fix them before training.")
        return False
    return True


def _parse_train(run_args: list[str]) -> argparse.Namespace:
    """`lora-tui train` arguments read as the command reads them (a bad one: argparse's usage error, exit 2)."""
    parser = argparse.ArgumentParser(prog="lora-tui train")
    add_train_arguments(parser)
    parsed = parser.parse_args(run_args)
    parsed.argv = ["train", *run_args]
    return parsed


SWEEP_OPTIONS = {"--sweep": True, "--queue": False, "--name": True, "--eval-after": False}


def _own_arguments(args) -> list[str]:
    """This command's train arguments as typed, less --sweep and --queue (a queued run is an ordinary one)."""
    return _absolute_paths(_strip(args.argv[1:], ("--sweep", "--queue")))


def _point_arguments(args, point) -> list[str]:
    """One grid point's train arguments: the command's own, its name, the point's values, its sweep."""
    base = _strip(args.argv[1:], tuple(SWEEP_OPTIONS))
    values = []
    for parameter, text in point.texts.items():
        param = params.PARAMS_BY_NAME[parameter]
        if param.kind is bool:
            values.append(param.flag if point.values[parameter] else f"--no-{param.flag[2:]}")
        else:
            values += [param.flag, text]
    sweep = json.dumps({"name": args.name, "values": point.values})
    extra = ["--eval-after"] if args.eval_after else []
    return _absolute_paths([*base, "--name", point.name, *values, "--sweep-of", sweep, *extra])


PATH_OPTIONS = ("--data", "--model", "--config", "--sample-from")


def _absolute_paths(argv: list[str]) -> list[str]:
    """Paths given relative to here made absolute: a queued run may start from another folder."""
    result = list(argv)
    for index, token in enumerate(result[:-1]):
        if token in PATH_OPTIONS and Path(result[index + 1]).expanduser().exists():
            result[index + 1] = str(Path(result[index + 1]).expanduser().resolve())
    return result


def _strip(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """`argv` without the given options (and the value of those that take one)."""
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        option = token.split("=", 1)[0]
        if option in options:
            skip = "=" not in token and SWEEP_OPTIONS.get(option, False)
            continue
        kept.append(token)
    return kept


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


def _indented(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def add_commands(commands) -> None:
    train_parser = commands.add_parser(
        "train",
        help="train a LoRA adapter (headless)",
        epilog=_presets_help() + "\n\nrewards (grpo; --reward SPEC[=WEIGHT], repeatable):\n" + _indented(reward_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_arguments(train_parser)
    train_parser.set_defaults(handler=train)


def add_train_arguments(train_parser) -> None:
    """Every `lora-tui train` option: on the command's own parser, and on the one a queued run is read with."""
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
    grid = train_parser.add_argument_group("sweeps and the queue")
    grid.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="PARAMETER=V1,V2",
        help="train one run per value (repeat for a grid); runs are named NAME-lr1e-4-r8 and so on",
    )
    grid.add_argument("--queue", action="store_true", help="add the run (or the sweep's runs) to the queue")
    grid.add_argument(
        "--eval-after", action="store_true", help="evaluate the adapter on held-out records when the run ends"
    )
    grid.add_argument("--sweep-of", help=argparse.SUPPRESS)  # set on a sweep's own runs: the sweep, as JSON
    params.add_arguments(train_parser.add_argument_group("training parameters"))
