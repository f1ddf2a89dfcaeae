"""The `lora-tui` command: the TUI with no arguments, subcommands for scripts.

Exit codes: 0 success, 1 a user error (one sentence on stderr, no traceback),
2 a usage error (argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from collections.abc import Sequence

from lora_tui import __version__
from lora_tui.cli import adapters, chat, data, evaluate, models, queue, serve, train
from lora_tui.cli.output import Context
from lora_tui.core.errors import UserError
from lora_tui.core.locations import Locations

COMMAND_GROUPS = (models, data, train, queue, evaluate, adapters, chat, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lora-tui",
        description="Fine-tune local language models with LoRA on MLX. With no command, opens the TUI.",
    )
    parser.add_argument("--version", action="version", version=f"lora-tui {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return parser


def run_tui(context: Context) -> int:
    # Deferred: the subcommands never pay for loading Textual.
    from lora_tui.app import make_app

    app = make_app(context.locations, context.settings)
    app.exit_watchdog = True
    app.run()
    if app.handed_off_log is not None:
        with contextlib.suppress(OSError):
            print(
                f"lora-tui: {app.hand_off.adapter_dir.name} goes on training in the background "
                f"(its output: {app.handed_off_log}); lora-tui follows it when it opens again.",
                file=sys.stderr,
            )
    if app.stopped_by:  # SIGTERM or SIGHUP: a run that was training has been saved
        with contextlib.suppress(OSError):
            print(f"lora-tui: stopped by {app.stopped_by}; any run that was training was saved.", file=sys.stderr)
        return 128 + signal.Signals[app.stopped_by].value
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" notices
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # as typed: a queued run keeps its own words
    context = Context(Locations.from_environment())
    try:
        if args.command is None:
            return run_tui(context)
        _terminating_interrupts()
        return args.handler(args, context)
    except UserError as error:
        print(f"lora-tui: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lora-tui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_went_away()
    except OSError as error:  # a write the system refused; the temp-file helpers have removed what was half-written
        print(f"lora-tui: {_os_problem(error)}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        if "unable to write" not in str(error).lower():  # MLX's word for a write the full disk refused
            raise
        print(
            "lora-tui: the disk is full; nothing half-written was left. Free some space and run it again.",
            file=sys.stderr,
        )
        return 1


def _os_problem(error: OSError) -> str:
    where = f" ({error.filename})" if error.filename else ""
    if error.errno == errno.ENOSPC:
        return f"the disk is full{where}; nothing half-written was left. Free some space and run it again."
    return f"{error.filename or 'a file'}: {error.strerror or error}."


def _terminating_interrupts() -> None:
    """SIGTERM (kill, launchd, tmux kill-session) and SIGHUP (a dropped connection) interrupt a command as Ctrl-C
    does, so its temp files are removed on the way out; train and eval stop after their step instead."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, interrupt)


def _reader_went_away() -> int:
    """The reader of our output stopped (`| head`): stop quietly, as a tool killed by SIGPIPE does.
    stdout goes to /dev/null first, so the flush at exit cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + 13  # SIGPIPE
