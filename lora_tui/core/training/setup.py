"""Everything checked before a training run starts, shared by the CLI and the TUI.

A run never starts on a missing model, data with errors, a taken name or an
unwritable folder: each is one clear message, and nothing is written.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from lora_tui.core.adapters.layout import latest_checkpoint, read_metadata
from lora_tui.core.adapters.lock import adapter_lock, refuse_if_busy
from lora_tui.core.adapters.registry import get_adapter, read_adapter_config, refuse_other_base
from lora_tui.core.data.check import DatasetReport, check_dataset
from lora_tui.core.data.columns import format_columns, parse_columns
from lora_tui.core.data.convert import convert_dataset
from lora_tui.core.data.records import dataset_files, load_records
from lora_tui.core.data.split import split_dataset
from lora_tui.core.errors import UserError
from lora_tui.core.locations import Locations
from lora_tui.core.models.store import check_family, resolve_model
from lora_tui.core.names import validate_name
from lora_tui.core.stopping import stop_on_signals
from lora_tui.core.training.adapted import check_targets
from lora_tui.core.training.events import Event
from lora_tui.core.training.fit import check_run_fits
from lora_tui.core.training.job import TrainingJob
from lora_tui.core.training.loop import run_training
from lora_tui.core.training.methods import check_method_fits_format
from lora_tui.core.training.methods.grpo import check_reference
from lora_tui.core.training.params import MODULE_KEYS, build_params, load_config, preset_values
from lora_tui.core.training.rewards import check_answers, parse_rewards


def prepare_job(
    locations: Locations,
    extra_model_dirs: list[Path],
    name: str,
    model: str | None,
    data: str | None,
    config: str | None = None,
    flags: dict | None = None,
    preset: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    valid_fraction: float | None = None,
    log: Callable[[str], None] = lambda m: None,
    from_adapter: str | None = None,
    sweep: dict | None = None,
    check_only: bool = False,
    ranks: int = 1,
) -> tuple[TrainingJob | None, DatasetReport | None]:
    """A checked TrainingJob, or (None, report) when the data has errors.

    An adapter that another run is training is refused first, naming that run. What this writes
    (a held-out split, the removal of an adapter being overwritten) happens under the adapter's lock.
    With `check_only`, everything is checked and nothing is written: (None, None) means the run can start
    (a queued run, or one run of a sweep, checked before any starts). `sweep` is recorded with the run.
    A run that would not fit in this machine's memory is refused (fit.DoesNotFit); one of several `ranks`
    is only estimated.
    """
    name = validate_name(name, "adapter name")
    adapter_dir = locations.adapters_dir / name
    refuse_if_busy(locations.adapters_dir, name)
    if resume:
        return _resume_job(adapter_dir, flags or preset, config, log), None
    if model is None or data is None:
        raise UserError("Training needs --model and --data (or --resume to continue a run).")
    if adapter_dir.exists() and not overwrite:
        raise UserError(f"An adapter named {name!r} already exists; choose another --name, or --resume or --overwrite.")
    config_values = load_config(Path(config)) if config else {}
    parameters = build_params(preset_values(preset), config_values, flags or {}, origin="flags")
    model_path, model_name = resolve_model(model, locations.models_dir, extra_model_dirs)
    start = None
    if from_adapter:
        if from_adapter == name:
            raise UserError(f"Name the new adapter something other than {name!r}, the adapter it starts from.")
        start = starting_adapter(locations.adapters_dir, from_adapter, model_path)
        parameters = build_params(parameters.to_json(), adapter_layout(start))
        log(f"Starting from the adapter {from_adapter!r}: its rank, scale, layers and projections.")
    check_family(model_path)
    check_targets(model_path, {m: MODULE_KEYS[m] for m in parameters.target_modules})
    data_path = Path(data).expanduser()
    columns = parse_columns(parameters.columns)
    report = check_dataset(data_path, max_seq_length=parameters.max_seq_length, columns=columns)
    if not report.ok:
        return None, report
    check_method_fits_format(parameters.method, report.format, data_path)
    if parameters.method == "grpo":
        check_grpo_rewards(parameters, data_path, columns)
    estimate = check_run_fits(model_path, parameters, data_path, columns, ranks)
    if estimate is not None:
        log(f"Memory{' per rank' if ranks > 1 else ''}: {estimate.describe()}.")
    _check_writable(locations.adapters_dir)
    if valid_fraction:
        _check_hold_out(data_path, report, valid_fraction)
    if check_only:
        return None, None
    with adapter_lock(locations.adapters_dir, name, doing="preparing"):
        if report.source not in ("jsonl", "text") or columns:
            data_path = as_jsonl(data_path, report, locations.runs_dir / name / "source", log)
        if valid_fraction:
            data_path = hold_out_validation(data_path, valid_fraction, locations.runs_dir / name / "data", log)
        if adapter_dir.exists():
            log(f"Replacing the adapter {name!r} (--overwrite).")
            shutil.rmtree(adapter_dir)
    job = TrainingJob(model_path, data_path, adapter_dir, parameters, model_name, from_adapter=start, sweep=sweep)
    return job, None


def check_grpo_rewards(parameters, data_path: Path, columns: dict[str, str] | None) -> None:
    """GRPO needs rewards, and answers for the rewards that score against one: refused before anything is written."""
    if not parameters.rewards:
        raise UserError("--method grpo needs at least one --reward (e.g. --reward number, --reward format:REGEX).")
    check_reference(parameters)
    rewards = parse_rewards(parameters.rewards)
    for file in dataset_files(data_path).values():
        check_answers(rewards, load_records(file, columns), file)


def starting_adapter(adapters_dir: Path, name: str, model_path: Path) -> Path:
    """The folder of the adapter a run starts from; refused when it belongs to another base model."""
    folder = get_adapter(adapters_dir, name).path
    refuse_other_base(folder, model_path)
    return folder


def adapter_layout(adapter_dir: Path) -> dict:
    """The training parameters that fix an adapter's shape, read from its adapter_config.json."""
    config = read_adapter_config(adapter_dir)
    lora = config.get("lora_parameters", {})
    modules = {key: module for module, key in MODULE_KEYS.items()}
    layout = {"rank": lora["rank"], "alpha": lora["scale"] * lora["rank"], "num_layers": config["num_layers"]}
    layout["fine_tune_type"] = config.get("fine_tune_type", "lora")
    if lora.get("keys"):
        unknown = [key for key in lora["keys"] if key not in modules]
        if unknown:
            raise UserError(f"{adapter_dir}: lora-tui cannot continue an adapter of {', '.join(unknown)}.")
        layout["target_modules"] = [modules[key] for key in lora["keys"]]
    return layout


def as_jsonl(data: Path, report: DatasetReport, folder: Path, log: Callable[[str], None]) -> Path:
    """A table (or a file read through a column mapping) written once as JSONL records in the run's folder, so
    training, resuming and evaluating read what was checked; the file (or the folder of splits) to train on."""
    if folder.exists():
        shutil.rmtree(folder)  # an earlier conversion for this run, made by lora-tui
    single = len(report.splits) <= 1
    converted = convert_dataset(data, folder / "train.jsonl" if single else folder, report.columns)
    mapping = f" through the columns {format_columns(report.columns)}" if report.columns else ""
    log(f"Read {sum(part.records for part in converted)} records from {data}{mapping}: {folder}.")
    return converted[0].output if single else folder


def _check_hold_out(data: Path, report: DatasetReport, fraction: float) -> None:
    """What hold_out_validation would refuse, said before anything is written."""
    mlx_lm_folder = data.is_dir() and report.source in ("jsonl", "text")
    if mlx_lm_folder or len(report.splits) > 1:
        raise UserError(
            f"{data} is a folder: it brings its own valid.jsonl; the validation fraction is for a single file."
        )
    if not 0 < fraction <= 0.5:
        raise UserError("The validation fraction must be above 0 and at most 0.5.")


def hold_out_validation(data: Path, fraction: float, folder: Path, log: Callable[[str], None]) -> Path:
    """Split one data file into folder/train.jsonl and valid.jsonl; return the folder to train on."""
    if data.is_dir():
        raise UserError(
            f"{data} is a folder: it brings its own valid.jsonl; the validation fraction is for a single file."
        )
    if not 0 < fraction <= 0.5:
        raise UserError("The validation fraction must be above 0 and at most 0.5.")
    if folder.exists():
        shutil.rmtree(folder)  # an earlier split of this run, made by lora-tui
    counts = split_dataset(data, folder, valid_fraction=fraction)
    log(f"Held out {counts['valid']} of {counts['train'] + counts['valid']} records for validation: {folder}.")
    return folder


def _resume_job(adapter_dir: Path, flags, config: str | None, log: Callable[[str], None]) -> TrainingJob:
    job = TrainingJob.load(adapter_dir)
    if job is None:
        raise UserError(f"No run to resume at {adapter_dir}.")
    if latest_checkpoint(adapter_dir) is None:
        raise UserError(f"{adapter_dir}: the run saved no checkpoint yet; start it again with --overwrite.")
    meta = read_metadata(adapter_dir)
    if meta.get("status") == "finished":
        raise UserError(
            f"The run of {adapter_dir.name!r} finished (step {meta.get('steps', '?')}); there is nothing to resume. "
            "Train again to start a new run from its settings."
        )
    if flags or config:
        log("Resuming with the run's own parameters; parameter flags, --preset and --config are ignored.")
    if not job.model_path.is_dir():
        raise UserError(f"The run's base model is gone: {job.model_path}.")
    return job.resumed()


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{folder}: cannot create the adapters folder ({exc.strerror}).") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"{folder}: the adapters folder is not writable.")


def run_with_interrupt(
    job: TrainingJob,
    listener: Callable[[Event], None],
    on_stop_requested: Callable[[str], None] = lambda signal_name: None,
    run=run_training,
) -> Event:
    """Run in this thread; the first Ctrl-C, SIGTERM or SIGHUP asks the loop to stop (it saves and writes its
    `cancelled` event), a second one aborts.

    `run(job, listener, stop)` is the loop itself, or `run_distributed` watching ranks.
    """
    stop = threading.Event()
    with stop_on_signals(stop, on_stop_requested):
        return run(job, listener, stop)
