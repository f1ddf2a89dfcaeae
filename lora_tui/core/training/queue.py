"""The run queue: training runs waiting their turn, in one file, run one at a time by one runner.

The queue is `queue.json` in lora-tui's data folder. Every change is read-modify-write under an
exclusive lock on `queue.lock` (two terminals adding at once lose nothing) and written through a
temp file (a crash never leaves half a queue). One runner at a time holds `queue.runner` locked,
with its pid in it, so a second `queue run` can say who runs the queue.

A job is a `lora-tui train` command line (its arguments), checked when it is added, and run as
its own process: a failure (or a crash) in one run is that job's, and the next still runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_write_text

STATUSES = ("pending", "running", "finished", "failed", "cancelled")
QUEUE_FILE = "queue.json"


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")


@dataclass
class QueueJob:
    id: int
    name: str  # the adapter it trains
    args: list[str]  # `lora-tui train` arguments
    status: str = "pending"
    added: str = field(default_factory=_now)
    started: str | None = None
    ended: str | None = None
    reason: str | None = None  # why it failed or was cancelled
    sweep: str | None = None  # the sweep it belongs to

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict) -> QueueJob:
        job = cls(**{key: value[key] for key in cls.__dataclass_fields__ if key in value})
        if not isinstance(job.id, int) or not isinstance(job.name, str) or not isinstance(job.args, list):
            raise TypeError("a job needs an id (a number), a name and args (a list)")
        if job.status not in STATUSES or not all(isinstance(arg, str) for arg in job.args):
            raise ValueError(f"job {job.id} has status {job.status!r} or arguments that are not text")
        return job


@dataclass
class RunQueue:
    """The queue of one lora-tui data folder."""

    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / QUEUE_FILE

    @property
    def runner_file(self) -> Path:
        return self.folder / "queue.runner"

    def jobs(self) -> list[QueueJob]:
        return self._read()

    def _read(self) -> list[QueueJob]:
        if not self.path.is_file():
            return []
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            return [QueueJob.from_json(job) for job in document["jobs"]]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"{self.path}: not a queue lora-tui can read ({exc}); fix it or move it away (it is left as it is)."
            ) from None

    def _write(self, jobs: list[QueueJob]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        document = {"version": 1, "jobs": [job.to_json() for job in jobs]}
        atomic_write_text(self.path, json.dumps(document, indent=1, ensure_ascii=False) + "\n")

    @contextlib.contextmanager
    def changing(self) -> Iterator[list[QueueJob]]:
        """The jobs, to change in place; written back when the block ends, all under the queue's lock."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "queue.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            jobs = self._read()
            yield jobs
            self._write(jobs)

    def add(self, name: str, args: list[str], sweep: str | None = None) -> QueueJob:
        with self.changing() as jobs:
            waiting = [job for job in jobs if job.name == name and job.status in ("pending", "running")]
            if waiting:
                raise UserError(
                    f"The queue already has a run named {name!r} (job {waiting[0].id}); choose another name."
                )
            job = QueueJob(max((job.id for job in jobs), default=0) + 1, name, list(args), sweep=sweep)
            jobs.append(job)
        return job

    def remove(self, job_id: int) -> QueueJob:
        with self.changing() as jobs:
            job = _find(jobs, job_id)
            if job.status == "running":
                raise UserError(f"Job {job_id} ({job.name}) is running; stop it where it runs (Ctrl-C saves it).")
            jobs.remove(job)
        return job

    def move(self, job_id: int, by: int) -> None:
        """A pending job one place earlier (by -1) or later (by 1) among the pending ones."""
        with self.changing() as jobs:
            job = _find(jobs, job_id)
            if job.status != "pending":
                raise UserError(f"Job {job_id} ({job.name}) is {job.status}; only pending jobs move.")
            pending = [index for index, other in enumerate(jobs) if other.status == "pending"]
            place = pending.index(jobs.index(job))
            target = place + by
            if 0 <= target < len(pending):
                a, b = pending[place], pending[target]
                jobs[a], jobs[b] = jobs[b], jobs[a]

    def clear(self) -> int:
        """Every job that is not running; how many were removed."""
        with self.changing() as jobs:
            kept = [job for job in jobs if job.status == "running"]
            removed = len(jobs) - len(kept)
            jobs[:] = kept
        return removed

    def take_next(self) -> QueueJob | None:
        """The first pending job, marked running; None when none waits."""
        with self.changing() as jobs:
            job = next((job for job in jobs if job.status == "pending"), None)
            if job is not None:
                job.status, job.started, job.ended, job.reason = "running", _now(), None, None
        return job

    def finish(self, job_id: int, status: str, reason: str | None = None) -> None:
        with self.changing() as jobs:
            job = next((job for job in jobs if job.id == job_id), None)
            if job is not None:  # removed by hand meanwhile: nothing to record
                job.status, job.ended, job.reason = status, _now(), reason

    def put_back(self, job_id: int) -> None:
        """A job taken but not started (the runner stopped first): pending again."""
        with self.changing() as jobs:
            job = next((job for job in jobs if job.id == job_id), None)
            if job is not None:
                job.status, job.started = "pending", None

    def mark_abandoned(self) -> list[QueueJob]:
        """Jobs left "running" by a runner that is gone (killed): failed, saying how to go on."""
        with self.changing() as jobs:
            stale = [job for job in jobs if job.status == "running"]
            for job in stale:
                job.status, job.ended = "failed", _now()
                job.reason = (
                    f"the queue runner stopped while it ran; continue with: lora-tui train --name {job.name!r} --resume"
                )
        return stale

    @contextlib.contextmanager
    def runner(self) -> Iterator[None]:
        """Held by the one process running the queue; a second is refused, naming the first."""
        self.folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.runner_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(
                    f"The queue is being run already ({self.runner_holder() or 'another process'})."
                ) from None
            os.ftruncate(descriptor, 0)
            os.pwrite(
                descriptor, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}).encode(), 0
            )
            yield
        finally:
            os.close(descriptor)

    def runner_holder(self) -> str | None:
        """Who runs the queue ("pid 123 on host, since ..."), or None when no runner holds it."""
        try:
            descriptor = os.open(self.runner_file, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    data = json.loads(self.runner_file.read_text(encoding="utf-8"))
                    return f"pid {data['pid']} on {data['host']}, since {data['since']}"
                except (OSError, ValueError, KeyError, TypeError):
                    return "another process"
            return None
        finally:
            os.close(descriptor)


def _find(jobs: list[QueueJob], job_id: int) -> QueueJob:
    job = next((job for job in jobs if job.id == job_id), None)
    if job is None:
        known = ", ".join(str(job.id) for job in jobs) or "none"
        raise UserError(f"No job {job_id} in the queue (its jobs: {known}).")
    return job


def parameter_arguments(values: dict) -> list[str]:
    """Training parameters as `lora-tui train` flags (values at their default are left out)."""
    from lora_tui.core.training.params import PARAMS_BY_NAME

    arguments = []
    for name, value in values.items():
        param = PARAMS_BY_NAME[name]
        if value is None or value == param.default:
            continue
        if param.kind is bool:
            arguments.append(param.flag if value else f"--no-{param.flag[2:]}")
        else:
            arguments += [param.flag, _flag_value(value)]
    return arguments


def _flag_value(value) -> str:
    if isinstance(value, list):
        return ",".join(value)
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class PlannedRun:
    """One run to queue: its adapter name, its parameters, and the sweep it belongs to (if any)."""

    name: str
    values: dict
    sweep: dict | None = None


def queue_runs(
    locations, extra_model_dirs: list[Path], model: str, data: str, runs: list[PlannedRun], valid_fraction=None
) -> list[QueueJob]:
    """Each run checked as `train` checks it (nothing written), then all added; a problem refuses them all."""
    from lora_tui.core.training.setup import prepare_job

    queue = RunQueue(locations.data_dir)
    if Path(data).expanduser().exists():  # a queued run may start from another folder
        data = str(Path(data).expanduser().resolve())
    for run in runs:
        _, report = prepare_job(
            locations,
            extra_model_dirs,
            run.name,
            model,
            data,
            flags=run.values,
            valid_fraction=valid_fraction,
            check_only=True,
        )
        if report is not None:
            raise UserError(f"{run.name}: the dataset has {report.first_error()}")
    jobs = []
    for run in runs:
        arguments = ["--model", model, "--data", data, "--name", run.name, *parameter_arguments(run.values)]
        if valid_fraction:
            arguments += ["--valid-fraction", f"{valid_fraction:g}"]
        if run.sweep:
            arguments += ["--sweep-of", json.dumps(run.sweep)]
        jobs.append(queue.add(run.name, arguments, sweep=run.sweep["name"] if run.sweep else None))
    return jobs


def start_runner(locations) -> Path:
    """`lora-tui queue run` in its own session (it outlives the app and its terminal); its output in a log."""
    import subprocess
    import sys

    log = Path(locations.data_dir) / "queue-runner.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as output:
        subprocess.Popen(
            [sys.executable, "-m", "lora_tui", "queue", "run"],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return log
