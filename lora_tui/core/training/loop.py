"""The MLX LoRA training loop.

Built on mlx-lm's model loading and LoRA layers; what mlx-lm's own trainer
lacks is here: epochs, schedules, clipping, gradient accumulation, ranks,
cancel (a stop flag), checkpoints with optimizer state, and exact resume.
What is trained and how (data, batches, loss, metrics) is the method's:
methods/ holds one module per method (sft, dpo, orpo, grpo).
It knows nothing of Textual: it reports typed events through a callback and
appends each to the adapter's events.jsonl. It runs in any thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np

from lora_tui.core.adapters.layout import (
    ADAPTER_WEIGHTS,
    CHECKPOINTS,
    EVENTS,
    OPTIMIZER_STATE,
    PROGRESS,
    STOP_FILE,
    checkpoint_folders,
    checkpoint_name,
    latest_checkpoint,
    write_adapter_config,
    write_metadata,
)
from lora_tui.core.adapters.lock import AdapterBusy, adapter_lock
from lora_tui.core.data.records import Record, dataset_files, load_records
from lora_tui.core.data.rendering import render_tokens
from lora_tui.core.errors import UserError
from lora_tui.core.files import building_dir, folder_size
from lora_tui.core.inference.generate import greedy_batch
from lora_tui.core.models.store import expand_for_cpu, is_quantized, load_model
from lora_tui.core.training.adapted import adapted_modules, unadapted_experts
from lora_tui.core.training.batching import longest_first
from lora_tui.core.training.events import (
    Cancelled,
    Checkpoint,
    Event,
    Failed,
    Finished,
    Notice,
    Sample,
    Started,
    Step,
    Validation,
)
from lora_tui.core.training.fit import estimate_memory, read_shape
from lora_tui.core.training.job import TrainingJob
from lora_tui.core.training.memory import SwapWatch, apply_memory_limits
from lora_tui.core.training.methods import RunContext, check_method_fits_data, method_class
from lora_tui.core.training.params import MODULE_KEYS
from lora_tui.core.training.ranks import Ranks, check_batch_split, package_versions
from lora_tui.core.training.rewards import RewardError
from lora_tui.core.units import human_bytes

SAMPLE_TOKENS = 48  # per sample answer: enough to see its shape change
OUT_OF_MEMORY_ADVICE = "Try a smaller batch size or max sequence length, or turn on gradient checkpointing."


@dataclass
class Progress:
    """Everything needed to continue a run exactly where it stopped."""

    step: int = 0
    epoch: int = 0
    next_batch: int = 0  # within the epoch
    trained_tokens: int = 0
    best_val_loss: float | None = None
    evals_without_improvement: int = 0
    last_train_loss: float | None = None
    checkpoint_losses: dict | None = None  # checkpoint name -> val loss
    last_preference: dict | None = None  # the method's metrics of the last step (pairs: rewards, margin, accuracy)
    last_val_preference: dict | None = None  # and of the last validation

    def to_json(self) -> dict:
        return dict(self.__dict__)


class EventLog:
    """Calls the listener and appends every event to events.jsonl (on rank 0 only, when distributed)."""

    def __init__(self, path: Path, listener: Callable[[Event], None], active: bool = True) -> None:
        self.path = path
        self.listener = listener
        self.active = active

    def __call__(self, event: Event) -> Event:
        if self.active:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(event.to_json()) + "\n")
            self.listener(event)
        return event


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_sha256(data: Path) -> str:
    files = dataset_files(data)
    if len(files) == 1:
        return file_sha256(files["train"])
    return hashlib.sha256("".join(f"{k}:{file_sha256(v)}" for k, v in sorted(files.items())).encode()).hexdigest()


def peak_memory_bytes() -> int:
    import mlx.core as mx

    peak = mx.get_peak_memory()
    return int(peak) if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_training(
    job: TrainingJob, listener: Callable[[Event], None] = lambda e: None, stop: threading.Event | None = None
) -> Event:
    """Run the job to its end; return the terminal event (finished, cancelled or failed).

    The writing rank holds the adapter's lock for the whole run: a second run of the same
    adapter is refused before it writes anything.
    """
    ranks = Ranks()
    try:
        ranks.check_versions(package_versions())
    except UserError as error:  # before anything is written
        return _refused(error, listener)
    if not ranks.is_writer:
        return _train(job, listener, stop, ranks)
    try:
        with adapter_lock(job.adapter_dir.parent, job.adapter_dir.name):
            return _train(job, listener, stop, ranks)
    except AdapterBusy as error:  # the folder is another run's: not a line written to it
        return _refused(error, listener)


def _refused(error: UserError, listener: Callable[[Event], None]) -> Failed:
    failed = Failed(reason=str(error))
    listener(failed)
    return failed


def _train(job: TrainingJob, listener: Callable[[Event], None], stop: threading.Event | None, ranks: Ranks) -> Event:
    import mlx.core as mx

    if ranks.is_writer:
        job.adapter_dir.mkdir(parents=True, exist_ok=True)
        if not job.resume:
            job.save()
    emit = EventLog(job.adapter_dir / EVENTS, listener, active=ranks.is_writer)
    try:
        with mx.stream(mx.new_stream(mx.default_device())):
            return _Run(job, emit, stop or threading.Event(), ranks).run()
    except UserError as error:
        return emit(Failed(reason=str(error), advice=getattr(error, "advice", "")))
    except MemoryError:
        return emit(Failed(reason="Out of memory.", advice=OUT_OF_MEMORY_ADVICE))
    except OSError as error:
        if error.errno == errno.ENOSPC:
            return emit(_disk_full(job.adapter_dir))
        return emit(Failed(reason=f"{error.filename or ''}: {error.strerror or error}".lstrip(": ")))
    except RuntimeError as error:
        if "memory" in str(error).lower():
            return emit(Failed(reason=f"Out of memory ({error}).", advice=OUT_OF_MEMORY_ADVICE))
        if "unable to write" in str(error).lower():  # MLX's word for a write the full disk refused
            return emit(_disk_full(job.adapter_dir))
        raise


def _disk_full(adapter_dir: Path) -> Failed:
    """The disk filled: how much is free, and what a checkpoint of this run takes (the last one saved)."""
    free = shutil.disk_usage(adapter_dir).free
    saved = checkpoint_folders(adapter_dir)
    needed = f"a checkpoint of this run takes {human_bytes(folder_size(saved[-1]))}" if saved else "make room"
    return Failed(
        reason=f"The disk filled while saving to {adapter_dir} ({human_bytes(free)} free).",
        advice=f"Free space ({needed}), then resume the run: what was saved is kept.",
    )


class _Run:
    def __init__(self, job: TrainingJob, emit: EventLog, stop: threading.Event, ranks: Ranks) -> None:
        self.job = job
        self.params = job.params
        self.emit = emit
        self.stop = stop
        self.ranks = ranks
        self.notes: list[str] = []
        self.validations = 0
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    # Setup ---------------------------------------------------------------------

    def load(self) -> None:
        import mlx.core as mx
        from mlx_lm.tuner.utils import linear_to_lora_layers

        self.memory_limits = apply_memory_limits(self.params.wired_limit, self.params.cache_limit)
        self.swap = SwapWatch()
        mx.reset_peak_memory()  # the steps' peak is this run's, loading included, not the process's so far
        self.model, self.tokenizer = load_model(self.job.model_path)
        quantized = is_quantized(self.model)
        if expand_for_cpu(self.model) and quantized:
            self.notes.append(
                "The base model is quantized and MLX's CPU backend has no fast quantized kernels: "
                "it was dequantized in memory for training (the adapter still loads on the quantized model)."
            )
        elif quantized and mx.default_device() == mx.cpu:
            self.notes.append(
                "The base model is quantized and too big to dequantize in this machine's memory: "
                "MLX's CPU backend has no fast quantized kernels, so steps will be slow."
            )
        self.model.freeze()
        layers = len(self.model.layers)
        self.num_layers = layers if self.params.num_layers == -1 else min(self.params.num_layers, layers)
        mx.random.seed(self.params.seed)
        linear_to_lora_layers(
            self.model, self.num_layers, self.lora_config(), use_dora=self.params.fine_tune_type == "dora"
        )
        self.adapted = adapted_modules(self.model)
        if experts := unadapted_experts(self.model):
            self.notes.append(
                f"A mixture of experts: its experts ({', '.join(experts)}) are not adapted; only "
                "the projections listed under 'adapted' are."
            )
        if self.job.from_adapter is not None:  # before the DPO reference: it is this adapter, frozen
            if not (self.job.from_adapter / ADAPTER_WEIGHTS).is_file():
                raise UserError(f"The adapter this run starts from is gone: {self.job.from_adapter}.")
            self.model.load_weights(str(self.job.from_adapter / ADAPTER_WEIGHTS), strict=False)
            self.notes.append(f"Started from the adapter {self.job.from_adapter.name}.")
        self.context = RunContext(self.job, self.model, self.tokenizer, self.ranks, self.emit, self.notes)
        self.method = method_class(self.params.method)(self.context)

    def lora_config(self) -> dict:
        return {
            "rank": self.params.rank,
            "scale": self.params.scale,
            # mlx-lm reads scale; tools that read alpha (Ollama, PEFT, llama.cpp's converter) get the same strength
            "alpha": self.params.scale * self.params.rank,
            "dropout": self.params.dropout,
            "keys": [MODULE_KEYS[m] for m in self.params.target_modules],
        }

    def prepare_data(self) -> None:
        check_batch_split(self.params.batch_size, self.ranks.size)
        files = dataset_files(self.job.data)
        train = load_records(files["train"])
        valid = load_records(files["valid"]) if "valid" in files else []
        if not train:
            raise UserError(f"{files['train']}: no training records.")
        check_method_fits_data(self.params.method, train, files["train"])
        if valid:
            check_method_fits_data(self.params.method, valid, files["valid"])
        self.context.files = files
        self.method.prepare(train, valid)
        self.has_validation = self.method.valid_records() > 0
        self.sample_conversations = self.sample_prompts(valid)
        if not valid:
            self.notes.append(
                "No valid.jsonl beside the training data: no validation loss. Hold some records out "
                "with --valid-fraction 0.1 (the Train screen: validation), or `lora-tui data split`."
            )
        self.batches_per_epoch = len(self.method.plan("train", 0).rows)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / self.params.grad_accumulation_steps)
        self.total_steps = self.steps_per_epoch * self.params.epochs

    def sample_prompts(self, valid: list[Record]) -> list[tuple[dict, ...]]:
        """The conversations samples answer: from --sample-from, else the validation set's."""
        p = self.params
        if not p.sample_every:
            return []
        if p.sample_from is None:
            return [r.prompt_messages for r in valid if r.is_chat][: p.sample_prompts]
        source = Path(p.sample_from).expanduser()
        if source.suffix == ".jsonl":
            return [r.prompt_messages for r in load_records(source) if r.is_chat][: p.sample_prompts]
        try:
            lines = [line.strip() for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as error:
            raise UserError(f"{source}: cannot read the sample prompts ({error.strerror}).") from None
        except UnicodeDecodeError:
            raise UserError(f"{source}: the sample prompts are not UTF-8 text.") from None
        return [({"role": "user", "content": line},) for line in lines[: p.sample_prompts]]

    def make_optimizer(self):
        import mlx.optimizers as optim

        p = self.params
        decay_steps = max(1, self.total_steps - p.warmup_steps)
        if p.lr_schedule == "cosine":
            schedule = optim.cosine_decay(p.learning_rate, decay_steps)
        elif p.lr_schedule == "linear":
            schedule = optim.linear_schedule(p.learning_rate, 0.0, decay_steps)
        else:
            schedule = optim.linear_schedule(p.learning_rate, p.learning_rate, 1)  # constant
        if p.warmup_steps:
            warmup = optim.linear_schedule(0.0, p.learning_rate, p.warmup_steps)
            schedule = optim.join_schedules([warmup, schedule], [p.warmup_steps])
        self.schedule = schedule
        if p.optimizer == "adam":
            return optim.Adam(learning_rate=schedule)
        return optim.AdamW(learning_rate=schedule, weight_decay=p.weight_decay)

    # The loop ------------------------------------------------------------------

    def run(self) -> Event:
        self.load()
        self.prepare_data()
        optimizer = self.make_optimizer()
        progress = self.restore(optimizer) if self.job.resume else Progress(checkpoint_losses={})
        restore_call = self.enable_grad_checkpoint()
        try:
            self.model.train()
            return self.loop(self.compiled_step(optimizer), optimizer, progress)
        finally:
            restore_call()

    def compiled_step(self, optimizer):
        """One micro-batch: the method's loss and its gradient, added to the group's; the update on its last."""
        import mlx.core as mx
        import mlx.nn as nn
        import mlx.optimizers as optim
        from mlx.utils import tree_map

        value_and_grad = nn.value_and_grad(self.model, self.method.loss)
        max_norm = self.params.max_grad_norm
        state = [self.model.state, optimizer.state, mx.random.state]
        group = self.ranks.group if self.ranks.size > 1 else None

        @partial(mx.compile, inputs=state, outputs=state)
        def step(previous, update, group_size, *arrays):
            (loss, count, stats), grad = value_and_grad(self.model, *arrays)
            if group is not None:
                # The global batch's mean is the sum of each rank's mean weighted by its share of what the
                # loss is a mean over; average_gradients sends all gradients in one all-reduce, and divides by size.
                total = mx.distributed.all_sum(count, group=group)
                share = count / mx.maximum(total, 1)
                grad = nn.average_gradients(tree_map(lambda g: g * (share * group.size()), grad), group=group)
                loss, count = mx.distributed.all_sum(loss * share, group=group), total
                stats = mx.distributed.all_sum(stats, group=group)
            if previous is not None:
                grad = tree_map(lambda a, b: a + b, grad, previous)
            if update:
                grad = tree_map(lambda g: g / group_size, grad)
                if max_norm > 0:
                    grad, _ = optim.clip_grad_norm(grad, max_norm)
                optimizer.update(self.model, grad)
                grad = None
            return loss, count, stats, grad

        return step

    def enable_grad_checkpoint(self) -> Callable[[], None]:
        """mlx-lm's grad_checkpoint patches the block class; undo it after the run."""
        if not self.params.grad_checkpoint:
            return lambda: None
        from mlx_lm.tuner.trainer import grad_checkpoint

        block = type(self.model.layers[0])
        original = block.__call__
        grad_checkpoint(self.model.layers[0])
        return lambda: setattr(block, "__call__", original)

    def loop(self, step, optimizer, progress: Progress) -> Event:
        import mlx.core as mx

        p = self.params
        self.emit(
            Started(
                parameters={**p.to_json(), **self.method.reported_parameters()},
                trainable_parameters=self.count_parameters(True),
                total_parameters=self.count_parameters(False),
                total_steps=self.total_steps,
                steps_per_epoch=self.steps_per_epoch,
                train_records=self.method.train_records(),
                valid_records=self.method.valid_records(),
                resumed_from_step=progress.step,
                notes=self.notes,
                ranks=self.ranks.size,
                adapted=[group.to_json() for group in self.adapted],
                memory_limits=self.memory_limits.to_json(),
                predicted_peak_bytes=self.predicted_peak(),
            )
        )
        step_seconds: list[float] = []
        for epoch in range(progress.epoch, p.epochs):
            plan = self.epoch_plan(epoch, first=epoch == progress.epoch)
            grad, group_losses, group_tokens, group_count, started = None, [], 0, 0, time.perf_counter()
            micro_count, group_stats = 0, np.zeros(self.method.stats_size)
            for index in range(progress.next_batch if epoch == progress.epoch else 0, len(plan.rows)):
                # Dropout draws (and sampling) depend only on the position in the run: a resumed run repeats them.
                mx.random.seed((p.seed * 1_000_003 + epoch * 100_003 + index) % 2**32)
                micro_batches = self.micro_batches(plan.rows[index], progress, optimizer)
                group_count += 1
                last_in_group = group_count == p.grad_accumulation_steps or index == len(plan.rows) - 1
                batch_losses = []
                for number, micro in enumerate(micro_batches):
                    micro_count += 1  # micro-batches so far: the optimizer averages them
                    update = last_in_group and number == len(micro_batches) - 1
                    loss, _, stats, grad = step(grad, update, micro_count, *micro.arrays)
                    mx.eval(loss, stats, grad, self.model.state, optimizer.state)
                    batch_losses.append(float(loss))
                    group_stats += np.array(stats)
                    group_tokens += micro.tokens
                group_losses.append(float(np.mean(batch_losses)))
                if not last_in_group:
                    continue
                group_tokens = int(self.ranks.sum([float(group_tokens)])[0])  # all ranks' tokens
                elapsed = time.perf_counter() - started
                step_seconds.append(elapsed)
                progress.step += 1
                progress.trained_tokens += group_tokens
                progress.last_train_loss = float(np.mean(group_losses))
                progress.epoch, progress.next_batch = epoch, index + 1
                metrics = self.method.metrics(group_stats)
                progress.last_preference = metrics or None
                self.emit(
                    Step(
                        step=progress.step,
                        epoch=round(epoch + (index + 1) / len(plan.rows), 4),
                        train_loss=progress.last_train_loss,
                        learning_rate=float(self.schedule(progress.step - 1)),
                        tokens_per_second=group_tokens / elapsed,
                        iterations_per_second=1 / elapsed,
                        trained_tokens=progress.trained_tokens,
                        peak_memory_bytes=peak_memory_bytes(),
                        eta_seconds=float(np.mean(step_seconds[-20:])) * (self.total_steps - progress.step),
                        **metrics,
                    )
                )
                self.method.after_step(progress.step)
                swapping = self.swap.check()
                if swapping:
                    self.emit(Notice(progress.step, swapping))
                grad, group_losses, group_tokens, group_count = None, [], 0, 0
                micro_count, group_stats = 0, np.zeros(self.method.stats_size)
                outcome = self.after_step(progress, optimizer, end_of_epoch=index == len(plan.rows) - 1)
                if outcome is not None:
                    return outcome
                started = time.perf_counter()
            progress.epoch, progress.next_batch = epoch + 1, 0
        return self.finish(progress, "completed")

    def epoch_plan(self, epoch: int, first: bool):
        """The epoch's batches; a trial's first epoch starts with its longest batch (its peak is the run's)."""
        plan = self.method.plan("train", epoch)
        examples = self.method.train_examples_planned()
        if self.job.longest_first and first and examples is not None:
            return longest_first(plan, examples)
        return plan

    def micro_batches(self, rows, progress: Progress, optimizer):
        """The method's micro-batches of a batch; a reward that fails stops the run with what was trained saved."""
        try:
            return self.method.micro_batches("train", rows)
        except RewardError as error:
            if progress.step:
                self.save_checkpoint(progress, optimizer, None)
                self.save_adapter(progress, "failed")
            error.advice = f"Training stopped at step {progress.step}" + (
                "; what it trained is saved: fix the reward, then resume the run." if progress.step else "."
            )
            raise

    def stop_requested(self) -> bool:
        """The stop flag, or a stop file (how `train --hosts` asks its ranks to stop), seen on any rank."""
        wanted = self.stop.is_set() or (self.ranks.is_writer and (self.job.adapter_dir / STOP_FILE).exists())
        return self.ranks.sum([1.0 if wanted else 0.0])[0] > 0

    def after_step(self, progress: Progress, optimizer, end_of_epoch: bool) -> Event | None:
        p = self.params
        val_loss = None
        last_step = progress.step == self.total_steps
        if self.has_validation and (progress.step % p.steps_per_eval == 0 or end_of_epoch or last_step):
            val_loss, metrics = self.method.validate(p.val_batches)
            progress.last_val_preference = metrics or None
            self.emit(Validation(step=progress.step, val_loss=val_loss, **metrics))
            self.validations += 1
            if p.sample_every and self.validations % p.sample_every == 0:
                self.sample(progress.step)
            self.method.after_validation(progress.step)
            if progress.best_val_loss is None or val_loss < progress.best_val_loss:
                progress.best_val_loss, progress.evals_without_improvement = val_loss, 0
            else:
                progress.evals_without_improvement += 1
        stopping = self.stop_requested()
        early = p.early_stopping_patience and progress.evals_without_improvement >= p.early_stopping_patience
        if end_of_epoch and progress.next_batch:
            progress.epoch, progress.next_batch = progress.epoch + 1, 0
        if (p.save_every and progress.step % p.save_every == 0) or end_of_epoch or stopping or early:
            self.save_checkpoint(progress, optimizer, val_loss)
        if stopping:
            self.save_adapter(progress, "cancelled")
            return self.emit(Cancelled(step=progress.step, adapter_path=str(self.job.adapter_dir)))
        if early and not last_step:
            return self.finish(progress, "early stopping")
        return None

    def sample(self, step: int) -> None:
        """Greedy answers to the sample prompts, reported as a Sample event (the writing rank only)."""
        if not self.ranks.is_writer or not self.sample_conversations:
            return
        prompts = [self.prompt_tokens(list(messages)) for messages in self.sample_conversations]
        answers = self.greedy(prompts, SAMPLE_TOKENS)
        questions = [messages[-1]["content"] for messages in self.sample_conversations]
        self.emit(Sample(step=step, prompts=questions, answers=answers))

    def prompt_tokens(self, messages: list[dict]) -> list[int]:
        return render_tokens(self.tokenizer, messages, add_generation_prompt=True)

    def greedy(self, prompts: list[list[int]], max_tokens: int) -> list[str]:
        self.model.eval()
        answers = greedy_batch(self.model, self.tokenizer, prompts, max_tokens)
        self.model.train()
        return [answer.text.strip() for answer in answers]

    def predicted_peak(self) -> int | None:
        """fit.py's peak for this run's tokenized records, shown beside the measured one (one process only:
        ranks share the batch)."""
        examples = self.method.train_examples_planned()
        if examples is None or self.ranks.size > 1:
            return None
        try:
            shape = read_shape(self.job.model_path)
        except (KeyError, TypeError, ZeroDivisionError):  # a config without the usual sizes
            return None
        return estimate_memory(shape, self.params, [len(example.tokens) for example in examples]).total

    def count_parameters(self, trainable: bool) -> int:
        from mlx.utils import tree_flatten

        tree = self.model.trainable_parameters() if trainable else self.model.parameters()
        return sum(v.size for _, v in tree_flatten(tree))

    # Saving and resuming ---------------------------------------------------------

    def adapter_weights(self) -> dict:
        from mlx.utils import tree_flatten

        return dict(tree_flatten(self.model.trainable_parameters()))

    def save_checkpoint(self, progress: Progress, optimizer, val_loss: float | None) -> None:
        import mlx.core as mx
        from mlx.utils import tree_flatten

        if not self.ranks.is_writer:
            return
        folder = self.job.adapter_dir / CHECKPOINTS
        folder.mkdir(exist_ok=True)
        name = checkpoint_name(progress.step)
        if (folder / name).exists():
            shutil.rmtree(folder / name)
        with building_dir(folder / name) as staging:
            mx.save_safetensors(str(staging / ADAPTER_WEIGHTS), self.adapter_weights())
            mx.save_safetensors(str(staging / OPTIMIZER_STATE), dict(tree_flatten(optimizer.state)))
            (staging / PROGRESS).write_text(json.dumps({**progress.to_json(), "val_loss": val_loss}, indent=2))
            write_adapter_config(staging, self.adapter_config())
        progress.checkpoint_losses[name] = val_loss
        self.prune_checkpoints(progress, latest=name)
        self.emit(Checkpoint(path=str(folder / name), step=progress.step, val_loss=val_loss))

    def prune_checkpoints(self, progress: Progress, latest: str) -> None:
        """Keep the latest checkpoint and the best `keep_best` by validation loss."""
        scored = sorted((loss, name) for name, loss in progress.checkpoint_losses.items() if loss is not None)
        keep = {latest} | {name for _, name in scored[: self.params.keep_best]}
        if not scored:  # no validation: keep the most recent ones
            keep |= set(sorted(progress.checkpoint_losses)[-self.params.keep_best :])
        for name in list(progress.checkpoint_losses):
            if name not in keep:
                shutil.rmtree(self.job.adapter_dir / CHECKPOINTS / name, ignore_errors=True)
                del progress.checkpoint_losses[name]

    def restore(self, optimizer) -> Progress:
        import mlx.core as mx
        from mlx.utils import tree_unflatten

        checkpoint = latest_checkpoint(self.job.adapter_dir) if self.ranks.is_writer else None
        if not self.ranks.sum([1.0 if checkpoint else 0.0])[0]:
            raise UserError(f"{self.job.adapter_dir}: no checkpoint to resume from.")
        with self.shared_checkpoint(checkpoint) as folder:
            self.model.load_weights(str(folder / ADAPTER_WEIGHTS), strict=False)
            optimizer.state = tree_unflatten(list(mx.load(str(folder / OPTIMIZER_STATE)).items()))
            saved = json.loads((folder / PROGRESS).read_text())
        saved.pop("val_loss", None)
        self.notes.append(f"Resumed from {checkpoint_name(saved['step'])}.")
        return Progress(**saved)

    @contextlib.contextmanager
    def shared_checkpoint(self, checkpoint: Path | None):
        """Rank 0's checkpoint folder; the other ranks get a temporary copy of its files, sent by rank 0."""
        if self.ranks.size == 1:
            yield checkpoint
            return
        copy = Path(tempfile.mkdtemp(prefix="lora-tui-checkpoint-"))
        try:
            for name in (ADAPTER_WEIGHTS, OPTIMIZER_STATE, PROGRESS):
                data = self.ranks.share_bytes((checkpoint / name).read_bytes() if self.ranks.is_writer else None)
                (copy / name).write_bytes(data)
            yield checkpoint if self.ranks.is_writer else copy
        finally:
            shutil.rmtree(copy, ignore_errors=True)

    def adapter_config(self) -> dict:
        return {
            "fine_tune_type": self.params.fine_tune_type,
            "num_layers": self.num_layers,
            "lora_parameters": self.lora_config(),
            "model": str(self.job.model_path),
        }

    def save_adapter(self, progress: Progress, status: str) -> None:
        import mlx.core as mx

        if not self.ranks.is_writer:
            return
        folder = self.job.adapter_dir
        metrics_name = self.method.metrics_name or "preference"
        temporary = folder / f".{ADAPTER_WEIGHTS}.tmp.safetensors"
        mx.save_safetensors(str(temporary), self.adapter_weights())
        os.replace(temporary, folder / ADAPTER_WEIGHTS)
        write_adapter_config(folder, self.adapter_config())
        write_metadata(
            folder,
            {
                "name": folder.name,
                "base_model": self.job.model_name or str(self.job.model_path),
                "base_model_path": str(self.job.model_path),
                "dataset": str(self.job.data),
                "dataset_sha256": dataset_sha256(self.job.data),
                "from_adapter": self.job.from_adapter.name if self.job.from_adapter else None,
                "created": self.started,
                "parameters": {**self.params.to_json(), **self.method.reported_parameters()},
                "final_train_loss": progress.last_train_loss,
                "best_val_loss": progress.best_val_loss,
                f"final_{metrics_name}": progress.last_preference,
                f"final_val_{metrics_name}": progress.last_val_preference,
                "steps": progress.step,
                "epochs": round(progress.epoch + progress.next_batch / max(self.batches_per_epoch, 1), 4),
                "tokens_seen": progress.trained_tokens,
                "status": status,
                **({"sweep": self.job.sweep} if self.job.sweep else {}),
            },
        )

    def finish(self, progress: Progress, reason: str) -> Event:
        self.save_adapter(progress, "finished")
        return self.emit(
            Finished(
                step=progress.step,
                final_train_loss=progress.last_train_loss,
                best_val_loss=progress.best_val_loss,
                adapter_path=str(self.job.adapter_dir),
                reason=reason,
            )
        )
