"""`lora-tui queue ...` (runs waiting their turn) and `lora-tui sweep show` (a sweep's runs, ranked)."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys

from lora_tui.cli.output import Context, print_json, print_table, say, shown
from lora_tui.core.errors import UserError
from lora_tui.core.training.queue import QueueJob, RunQueue
from lora_tui.core.training.sweeps import sweep_runs
from lora_tui.core.units import counted


def _queue(context: Context) -> RunQueue:
    return RunQueue(context.locations.data_dir)


def queue_add(args, context: Context) -> int:
    from lora_tui.cli.train import _parse_train, sweep_or_queue

    train_args = list(args.train_args)
    if train_args[:1] == ["--"]:
        train_args = train_args[1:]
    if not train_args:
        raise UserError("Give the run's train arguments after --: lora-tui queue add -- --model M --data D --name N")
    run = _parse_train([*train_args, *([] if "--queue" in train_args else ["--queue"])])
    return sweep_or_queue(run, context)


def queue_list(args, context: Context) -> int:
    jobs = _queue(context).jobs()
    if args.json:
        print_json({"runner": _queue(context).runner_holder(), "jobs": [job.to_json() for job in jobs]})
        return 0
    if not jobs:
        print("The queue is empty. Add a run: lora-tui queue add -- --model M --data D --name N")
        return 0
    print_table(
        ["ID", "NAME", "STATUS", "STARTED", "ENDED", "REASON"],
        [[job.id, job.name, job.status, shown(job.started), shown(job.ended), job.reason or ""] for job in jobs],
    )
    holder = _queue(context).runner_holder()
    say(f"Running: {holder}." if holder else "No runner: lora-tui queue run starts one.")
    return 0


def queue_remove(args, context: Context) -> int:
    job = _queue(context).remove(args.id)
    print(f"Removed job {job.id} ({job.name}, {job.status}).")
    return 0


def queue_clear(args, context: Context) -> int:
    removed = _queue(context).clear()
    print(f"Removed {counted(removed, 'job')}; a running job stays.")
    return 0


def queue_run(args, context: Context) -> int:
    """Every pending job in order, one at a time, each its own `lora-tui train`. A failed run is marked failed
    and the next runs; Ctrl-C (or SIGTERM) stops the current run after its step, saved, and leaves the rest."""
    queue = _queue(context)
    with queue.runner():
        for job in queue.mark_abandoned():
            say(f"Job {job.id} ({job.name}) was running when its runner stopped: marked failed.")
        ran = 0
        while (job := queue.take_next()) is not None:
            waiting = sum(1 for other in queue.jobs() if other.status == "pending")
            say(f"queue: job {job.id}, {job.name} ({waiting} more waiting)")
            code, reason = _run(job)
            ran += 1
            status = "finished" if code == 0 else "cancelled" if code in (130, 143) else "failed"
            queue.finish(job.id, status, reason if status != "finished" else None)
            say(
                f"queue: job {job.id}, {job.name}: {status}"
                + (f" ({reason})" if reason and status != "finished" else "")
            )
            if status == "cancelled":
                left = sum(1 for other in queue.jobs() if other.status == "pending")
                say(f"Stopped; {counted(left, 'job')} still pending (lora-tui queue run goes on with them).")
                return 130
        say(f"The queue is done ({counted(ran, 'run')} this time).")
    return 0


def _run(job: QueueJob) -> tuple[int, str | None]:
    """One job as its own process; its output passes through, and its last error line is the reason it failed.

    The terminal's Ctrl-C reaches the run itself (it saves and exits 130); a SIGTERM or SIGHUP sent to the
    runner alone is passed on to the run, which saves the same way."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lora_tui", "train", *job.args], stderr=subprocess.PIPE, text=True, bufsize=1
    )
    passed_on = {}

    def pass_on(signum, frame):
        process.send_signal(signal.SIGTERM)

    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        passed_on[number] = signal.signal(number, pass_on if number != signal.SIGINT else signal.SIG_IGN)
    reason = None
    try:
        for line in process.stderr:
            sys.stderr.write(line)
            if line.startswith("lora-tui: "):
                reason = line.removeprefix("lora-tui: ").strip()
        code = process.wait()
    finally:
        for number, handler in passed_on.items():
            signal.signal(number, handler)
    if code < 0:
        reason = f"killed by {signal.Signals(-code).name}"
    return code, reason or (None if code == 0 else f"exit {code}")


def sweep_show(args, context: Context) -> int:
    runs = sweep_runs(context.locations.adapters_dir, args.name)
    if args.json:
        print_json({"sweep": args.name, "runs": [run.to_json() for run in runs]})
        return 0
    swept = sorted({parameter for run in runs for parameter in run.values})
    headers = ["RANK", "ADAPTER", *(p.replace("_", "-") for p in swept), "BEST VAL", "TRAIN", "EVAL F1", "STATUS"]
    rows = [
        [
            rank,
            run.name,
            *(shown(run.values.get(p)) for p in swept),
            shown(run.best_val_loss),
            shown(run.final_train_loss),
            shown(run.eval_score, 3),
            run.status,
        ]
        for rank, run in enumerate(runs, start=1)
    ]
    _print_ranking(headers, rows, first_value=2, values=len(swept))
    return 0


def _print_ranking(headers: list[str], rows: list[list], first_value: int, values: int) -> None:
    """The table; on a terminal the best run in bold and, in each swept column, the values unlike the best's."""
    if not sys.stdout.isatty():
        print_table(headers, rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header)
    best = rows[0]
    for index, row in enumerate(rows):
        cells = []
        for column, cell in enumerate(row):
            swept_column = first_value <= column < first_value + values
            style = "bold" if index == 0 else "yellow" if swept_column and cell != best[column] else ""
            cells.append(f"[{style}]{cell}[/]" if style else str(cell))
        table.add_row(*cells)
    Console().print(table)


def add_commands(commands) -> None:
    queue = commands.add_parser("queue", help="runs waiting their turn, run one at a time (overnight)")
    sub = queue.add_subparsers(dest="queue_command", required=True, metavar="COMMAND")
    add = sub.add_parser(
        "add",
        help="check a run and add it to the queue: queue add -- TRAIN ARGUMENTS",
        description="Everything after -- is what lora-tui train takes (--sweep too: each run of the grid is added).",
    )
    add.add_argument("train_args", nargs=argparse.REMAINDER, metavar="-- TRAIN ARGUMENTS")
    add.set_defaults(handler=queue_add)
    listing = sub.add_parser("list", help="the jobs: pending, running, finished, failed, cancelled")
    listing.add_argument("--json", action="store_true", help="print one JSON document")
    listing.set_defaults(handler=queue_list)
    run = sub.add_parser("run", help="run the pending jobs in order, one at a time")
    run.set_defaults(handler=queue_run)
    remove = sub.add_parser("remove", help="remove a job that is not running")
    remove.add_argument("id", type=int)
    remove.set_defaults(handler=queue_remove)
    clear = sub.add_parser("clear", help="remove every job that is not running")
    clear.set_defaults(handler=queue_clear)

    sweep = commands.add_parser("sweep", help="the runs of a sweep (train --sweep), ranked")
    sweep_sub = sweep.add_subparsers(dest="sweep_command", required=True, metavar="COMMAND")
    show = sweep_sub.add_parser("show", help="rank the sweep's runs by best validation loss (then eval score)")
    show.add_argument("name", help="the sweep's name (train --name)")
    show.add_argument("--json", action="store_true", help="print one JSON document")
    show.set_defaults(handler=sweep_show)
