"""Starting data-parallel training across processes and machines, and watching it.

`mlx.launch` starts one process (rank) per host entry, each running
`python -m lora_tui.rank JOB_JSON` (see ranks.py for what a rank does). The
launching process checks the hostfile and the hosts first, then follows rank
0's events.jsonl.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.adapters.layout import EVENTS, STOP_FILE, latest_checkpoint
from lora_tui.core.adapters.lock import holder, refuse_if_busy
from lora_tui.core.errors import UserError
from lora_tui.core.training.events import Event, EventsFollower, Failed
from lora_tui.core.training.job import TrainingJob

LOOPBACK = "127.0.0.1"  # the one name mlx.launch starts without SSH
SSH_TIMEOUT_SECONDS = 8


# The hostfile -----------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    ssh: str
    ips: tuple[str, ...]

    @property
    def is_loopback(self) -> bool:
        return self.ssh == LOOPBACK

    @property
    def is_this_machine(self) -> bool:
        return self.is_loopback or self.ssh in ("localhost", socket.gethostname(), socket.getfqdn())


def read_hostfile(path: Path) -> list[Host]:
    """The hosts of an `mlx.launch` hostfile, checked: JSON, an ssh name each, no host twice, two or more."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such hostfile.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read it ({exc}).") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}).") from None
    entries = data.get("hosts") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise UserError(f'{path}: expected a list of hosts, or an object with "hosts" (mlx.launch\'s format).')
    hosts = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("ssh"), str) or not entry["ssh"].strip():
            raise UserError(
                f'{path}: host {number} needs an "ssh" name, e.g. {{"ssh": "mac-2.local", "ips": ["10.0.0.2"]}}.'
            )
        ips = entry.get("ips", [])
        if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
            raise UserError(f'{path}: host {number} ({entry["ssh"]}): "ips" must be a list of addresses.')
        if not ips:
            raise UserError(
                f'{path}: host {number} ({entry["ssh"]}) has no "ips"; the ring backend connects to IP addresses.'
            )
        hosts.append(Host(entry["ssh"].strip(), tuple(ips)))
    seen: dict[str, int] = {}
    for number, host in enumerate(hosts, start=1):
        if host.ssh in seen and not host.is_loopback:  # 127.0.0.1 may repeat: several ranks on this machine
            raise UserError(
                f"{path}: host {number} ({host.ssh}) is already host {seen[host.ssh]}; name each machine once."
            )
        seen[host.ssh] = number
    if len(hosts) < 2:
        raise UserError(f"{path}: name at least two hosts (one host trains without --hosts).")
    return hosts


def check_reachable(hosts: list[Host]) -> None:
    """Every remote host answers over SSH without a password prompt; else one message naming it."""
    for host in hosts:
        if host.is_loopback:
            continue
        try:
            result = subprocess.run(
                ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_TIMEOUT_SECONDS}", host.ssh, "true"],
                capture_output=True,
                text=True,
                timeout=SSH_TIMEOUT_SECONDS + 5,
            )
        except FileNotFoundError:
            raise UserError("ssh is not installed; it is needed to start training on other hosts.") from None
        except subprocess.TimeoutExpired:
            raise UserError(f"Host {host.ssh} did not answer over SSH within {SSH_TIMEOUT_SECONDS} s.") from None
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["no detail"])[-1]
            raise UserError(f"Host {host.ssh} cannot be reached over SSH ({detail}). Set up key login: see README.")


def check_hosts(path: Path) -> list[Host]:
    """A hostfile ready to train with: well formed, this machine first, every other host reachable."""
    hosts = read_hostfile(path)
    if not hosts[0].is_this_machine:
        raise UserError(
            f"{path}: the first host must be this machine (rank 0 writes the adapter here), not {hosts[0].ssh}."
        )
    check_reachable(hosts)
    return hosts


# Launching ---------------------------------------------------------------------------


def launch_command(job: TrainingJob, hostfile: Path | None = None, local_ranks: int = 0) -> list[str]:
    """The `mlx.launch` command that runs `python -m lora_tui.rank SPEC` once per host (or local rank)."""
    launcher = [sys.executable, "-c", "from mlx._distributed_utils.launch import main; main()"]
    if hostfile:
        where = ["--hostfile", str(hostfile)]
    else:
        where = ["--hosts", "127.0.0.1", "-n", str(local_ranks), *local_thread_limits(local_ranks)]
    return [
        *launcher,
        *where,
        "--backend",
        "ring",
        "--python",
        sys.executable,
        "--",
        "-m",
        "lora_tui.rank",
        json.dumps(job.to_json()),
    ]


def local_thread_limits(ranks: int) -> list[str]:
    """`--env` flags that share this machine's cores among its ranks' BLAS thread pools.

    Each process's OpenBLAS (MLX's CPU backend on Linux) otherwise starts one
    spinning thread per core, and the ranks fight over the cores: 2 ranks on 2
    cores trained at 0.32x of one process without this, 0.77x with it. A limit
    the user set is left alone.
    """
    if "OPENBLAS_NUM_THREADS" in os.environ:
        return []
    threads = max(1, (os.cpu_count() or 1) // max(1, ranks))
    return ["--env", f"OPENBLAS_NUM_THREADS={threads}", "--env", f"OMP_NUM_THREADS={threads}"]


# Watching a launched run --------------------------------------------------------------

POLL_SECONDS = 0.25


def run_distributed(
    job: TrainingJob, listener: Callable[[Event], None], stop: threading.Event, command: list[str], output=None
) -> Event:
    """Run `mlx.launch` and report rank 0's events as they are written; return the terminal event.

    Setting `stop` asks the ranks to stop after the current step and save (through a stop
    file rank 0 checks). When the launcher ends without a terminal event (a rank died and
    mlx.launch stopped the others), a failed event is written and returned.
    """
    refuse_if_busy(job.adapter_dir.parent, job.adapter_dir.name)  # rank 0 takes the lock; say so before starting
    stop_file = job.adapter_dir / STOP_FILE
    stop_file.unlink(missing_ok=True)
    follower = EventsFollower(job.adapter_dir / EVENTS)
    follower.new_events()  # a resumed run's earlier events are not news
    terminal = None
    process = subprocess.Popen(command, start_new_session=True, stdout=output, stderr=output)
    try:
        while True:
            try:
                code = process.wait(timeout=POLL_SECONDS)
            except subprocess.TimeoutExpired:
                code = None
            for event in follower.new_events():
                listener(event)
                if event.type in ("finished", "cancelled", "failed"):
                    terminal = event
            if stop.is_set() and job.adapter_dir.is_dir() and not stop_file.exists():
                stop_file.touch()
            if code is not None:
                break
    except KeyboardInterrupt:
        os.killpg(process.pid, signal.SIGTERM)
        raise
    finally:
        stop_file.unlink(missing_ok=True)
    if terminal is None:
        checkpoint = latest_checkpoint(job.adapter_dir)
        resume = (
            f"the last checkpoint ({checkpoint.name}) is kept: resume the run to go on from it"
            if checkpoint
            else "no checkpoint was saved yet: start again"
        )
        terminal = Failed(
            reason=f"A rank stopped before the run ended (the launcher exited with code {code}); "
            "every rank was stopped.",
            advice=f"See the output above for which; {resume}.",
        )
        other_run = holder(job.adapter_dir.parent, job.adapter_dir.name)
        if job.adapter_dir.is_dir() and other_run is None:  # so the dashboard and `adapters list` see how it ended
            with open(job.adapter_dir / EVENTS, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(terminal.to_json()) + "\n")
        listener(terminal)
    return terminal
