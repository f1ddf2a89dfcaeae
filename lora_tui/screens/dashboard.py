"""The training dashboard: live loss chart, progress, speed, memory, checkpoints, log."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import OptionList, ProgressBar, RichLog, Static
from textual.widgets.option_list import Option

from lora_tui.core.adapters.layout import read_metadata
from lora_tui.core.errors import UserError
from lora_tui.core.training.events import (
    Cancelled,
    Checkpoint,
    DriftCheck,
    Event,
    Failed,
    Finished,
    Notice,
    Sample,
    Started,
    Step,
    Validation,
    describe,
)
from lora_tui.core.training.memory import MemoryLimits
from lora_tui.core.training.queue import QueueJob, RunQueue, start_runner
from lora_tui.core.units import counted, human_bytes, human_duration
from lora_tui.messages import AdapterChatRequested, AdapterShowRequested, TrainingCancelRequested
from lora_tui.screens.dialogs import ConfirmDialog
from lora_tui.widgets.app_footer import AppFooter
from lora_tui.widgets.area_bar import AreaBar
from lora_tui.widgets.loss_chart import LossChart


def _job_line(job: QueueJob, adapters_dir: Path) -> str:
    """One job: its number, status and name, then its result (best validation loss), its reason, or when."""
    when = job.reason or (f"ended {job.ended}" if job.ended else f"since {job.started}" if job.started else "")
    if job.status == "finished":
        try:
            best = read_metadata(adapters_dir / job.name).get("best_val_loss")
        except UserError:
            best = None
        when = f"best val {best:.4g}" if isinstance(best, (int, float)) else when
    return f"{job.id:>3} {job.status:<9} {job.name}  {when}".rstrip()


class DashboardScreen(Screen):
    PURPOSE = """Watch the run that trains: train and validation loss, step, epoch, tokens/s, ETA,
    memory, learning rate, checkpoints and answer samples. Cancel saves the run so far; resume continues it."""
    BINDINGS = [
        Binding("x", "cancel_training", "Cancel", id="cancel-run"),
        Binding("l", "toggle_learning_rate", "LR", id="toggle-lr"),
        Binding(
            "r",
            "toggle_rewards",
            "Rewards",
            id="toggle-rewards",
            tooltip="dpo, orpo: margin, accuracy; grpo: reward",
        ),
        Binding("c", "open_in_chat", "Chat with it", id="run-chat", tooltip="the run's adapter in Chat"),
        Binding("a", "open_in_adapters", "Adapters", id="run-adapters", tooltip="the run's adapter in the manager"),
        Binding("u", "run_queue", "Run queue", id="run-queue", tooltip="run the queued jobs, one at a time"),
        Binding("delete", "remove_job", "Remove", id="queue-remove", tooltip="remove the highlighted pending job"),
        Binding("minus", "move_job(-1)", "Earlier", id="queue-earlier", tooltip="run the highlighted job sooner"),
        Binding("plus", "move_job(1)", "Later", id="queue-later", tooltip="run the highlighted job later"),
    ]
    QUEUE_SECONDS = 1.0

    def compose(self) -> ComposeResult:
        yield AreaBar("dashboard")
        with Horizontal(id="dashboard-top"):
            yield LossChart(id="loss-chart")
            with Vertical(id="run-stats"):
                yield Static("No run yet: start one from Train (2).", id="run-title")
                yield ProgressBar(id="run-progress", show_eta=False)
                yield Static("", id="run-numbers")
        yield RichLog(id="run-log", wrap=True, markup=False)
        yield Static("", id="run-samples")
        yield Static("", id="queue-title")
        yield OptionList(id="queue-list")
        yield AppFooter()

    def on_mount(self) -> None:
        self.reset()
        for event in self.app.run_events:
            self.show_event(event)
        self.queue_jobs: list[QueueJob] = []
        self.queue_shown: tuple | None = None  # what the queue list shows now, to redraw only on a change
        self.followed_job: int | None = None  # the queue job whose run the dashboard follows
        self.refresh_queue()
        self.set_interval(self.QUEUE_SECONDS, self.refresh_queue)

    # The queue -------------------------------------------------------------------------

    def run_queue_of(self) -> RunQueue:
        return RunQueue(self.app.locations.data_dir)

    def refresh_queue(self) -> None:
        """The queue under the run, and the run it is at followed as it gets there."""
        queue = self.run_queue_of()
        try:
            jobs = queue.jobs()
        except UserError as exc:
            self.query_one("#queue-title", Static).update(Text(str(exc)))
            return
        runner = queue.runner_holder() if jobs else None
        self.show_queue(jobs, runner)
        running = next((job for job in jobs if job.status == "running"), None)
        if running is not None and running.id != self.followed_job and not self.app.training_running:
            self.followed_job = running.id
            self.app.follow_run(self.app.locations.adapters_dir / running.name, switch=False)

    def show_queue(self, jobs: list[QueueJob], runner: str | None) -> None:
        title, listing = self.query_one("#queue-title", Static), self.query_one("#queue-list", OptionList)
        title.display = listing.display = bool(jobs)
        shown = ([job.to_json() for job in jobs], runner)
        if shown == self.queue_shown:
            return
        self.queue_jobs, self.queue_shown = jobs, shown
        pending = sum(1 for job in jobs if job.status == "pending")
        how = f"run by {runner}" if runner else "u runs it" if pending else "done"
        title.update(Text(f"queue: {pending} pending; {how}"))
        highlighted = listing.highlighted
        listing.clear_options()
        adapters = self.app.locations.adapters_dir
        listing.add_options([Option(Text(_job_line(job, adapters)), id=f"job-{job.id}") for job in jobs])
        if jobs:
            listing.highlighted = min(highlighted or 0, len(jobs) - 1)
        self.refresh_bindings()

    def highlighted_job(self) -> QueueJob | None:
        listing = self.query_one("#queue-list", OptionList)
        if listing.highlighted is None or listing.highlighted >= len(self.queue_jobs):
            return None
        return self.queue_jobs[listing.highlighted]

    def action_run_queue(self) -> None:
        queue = self.run_queue_of()
        try:
            pending = [job for job in queue.jobs() if job.status == "pending"]
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        if (runner := queue.runner_holder()) is not None:
            self.notify(f"The queue is being run already ({runner}).", severity="warning")
        elif not pending:
            self.notify("Nothing is queued: Train's Queue button adds runs.", severity="warning")
        else:
            log = start_runner(self.app.locations)
            self.notify(
                f"Running the queue: {counted(len(pending), 'job')}, one at a time; it goes on if the app quits. "
                f"Log: {log}"
            )

    def action_remove_job(self) -> None:
        if (job := self.highlighted_job()) is not None:
            self.change_queue(lambda queue: queue.remove(job.id), f"Removed job {job.id} ({job.name}).")

    def action_move_job(self, by: int) -> None:
        if (job := self.highlighted_job()) is not None:
            self.change_queue(lambda queue: queue.move(job.id, by), None)
            listing = self.query_one("#queue-list", OptionList)
            listing.highlighted = max(0, (listing.highlighted or 0) + by)

    def change_queue(self, change, done: str | None) -> None:
        try:
            change(self.run_queue_of())
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        if done:
            self.notify(done)
        self.refresh_queue()

    def reset(self) -> None:
        self.total_steps = 0
        self.last_step: Step | None = None
        self.best_val: float | None = None
        self.drift: DriftCheck | None = None
        self.valid_rewards: Validation | None = None
        self.last_checkpoint = "-"
        self.adapter_path: str | None = None
        self.ranks = 1
        self.memory_limits = ""  # the MLX limits the run set ("wired 21 GB"), shown by the peak
        self.predicted_peak: int | None = None  # what fit.py predicted, shown under the measured peak
        self.query_one(LossChart).clear()
        self.query_one(RichLog).clear()
        self.query_one(ProgressBar).update(total=1, progress=0)  # still, not the indeterminate animation
        self.query_one("#run-samples", Static).display = False  # until the run samples answers

    def show_event(self, event: Event) -> None:
        """Called by the app's handler, on the UI thread, for each event of the shown run."""
        log = self.query_one(RichLog)
        if isinstance(event, Started):
            self.start_run(event)
            self.total_steps = event.total_steps
            self.query_one(ProgressBar).update(total=event.total_steps, progress=event.resumed_from_step)
            title = f"{event.train_records} train / {event.valid_records} valid records, {event.total_steps} steps"
            if event.ranks > 1:
                title += f", {event.ranks} ranks"
            self.ranks = event.ranks
            self.query_one("#run-title", Static).update(title)
            self.memory_limits = MemoryLimits(**event.memory_limits).describe() if event.memory_limits else ""
            self.predicted_peak = event.predicted_peak_bytes
            log.write(describe(event))
        elif isinstance(event, Step):
            self.last_step = event
            chart = self.query_one(LossChart)
            if event.reward is not None and not chart.rewards["train"] and chart.view == "loss":
                chart.toggle("rewards")  # GRPO's loss says little; its rewards say how it learns
            chart.add_train(
                event.step,
                event.train_loss,
                event.learning_rate,
                event.reward_margin,
                event.reward_accuracy,
                event.reward,
            )
            self.query_one(ProgressBar).update(progress=event.step)
        elif isinstance(event, Validation):
            self.best_val = event.val_loss if self.best_val is None else min(self.best_val, event.val_loss)
            self.query_one(LossChart).add_valid(
                event.step, event.val_loss, event.reward_margin, event.reward_accuracy, event.reward
            )
            if event.reward_margin is not None or event.reward is not None:
                self.valid_rewards = event
            log.write(describe(event))
        elif isinstance(event, Sample):
            self.show_samples(event)
        elif isinstance(event, DriftCheck):
            self.drift = event
            log.write(describe(event))
        elif isinstance(event, Checkpoint):
            self.last_checkpoint = Path(event.path).name
            log.write(describe(event))
        elif isinstance(event, (Finished, Cancelled)):
            self.adapter_path = event.adapter_path
            log.write(describe(event))
            log.write("c: chat with it; a: see it in Adapters")
        elif isinstance(event, Notice):
            log.write(describe(event))
            self.notify(event.message, title="Memory", severity="warning", timeout=30)
        elif isinstance(event, Failed):
            log.write(describe(event))
        self.show_numbers()
        self.refresh_bindings()

    def starting(self, name: str) -> None:
        """Between Start and the run's first event (the model and data are loading): say so."""
        self.query_one("#run-title", Static).update(f"Starting {name}: loading the model and the data ...")

    def start_run(self, event: Started) -> None:
        """A new run starts with a clean dashboard; a resumed one keeps its curves up to where it resumes."""
        chart = self.query_one(LossChart)
        if not event.resumed_from_step or not chart.train:
            self.reset()
            return
        chart.keep_until(event.resumed_from_step)
        self.best_val = min((loss for _, loss in chart.valid), default=None)
        self.adapter_path = None

    def show_samples(self, event: Sample) -> None:
        """The latest greedy answers, each under its prompt; for GRPO the step's best and worst answer of a group."""
        if event.rewards is not None:
            text = Text(f"group at step {event.step}: {event.prompts[0]}\n", style="bold")
            for label, answer, reward in zip(("best", "worst"), event.answers, event.rewards, strict=False):
                text.append(f"{label} ({reward:.2f}) ", style="italic")
                text.append(f"{answer}\n")
            panel = self.query_one("#run-samples", Static)
            panel.update(text)
            panel.display = True
            return
        text = Text(f"answers at step {event.step}\n", style="bold")
        for prompt, answer in zip(event.prompts, event.answers, strict=True):
            text.append(f"{prompt}\n", style="italic")
            text.append(f"  {answer}\n")
        panel = self.query_one("#run-samples", Static)
        panel.update(text)
        panel.display = True

    def show_numbers(self) -> None:
        step = self.last_step
        best = f"{self.best_val:.4f}" if self.best_val is not None else "-"
        if step is None:
            text = f"best val loss {best}"
        else:
            text = (
                f"step {step.step}/{self.total_steps}  epoch {step.epoch:.2f}\n"
                f"loss {step.train_loss:.4f}  best val {best}\n"
                f"lr {step.learning_rate:.2e}\n"
                f"{step.tokens_per_second:.0f} tok/s{' (all ranks)' if self.ranks > 1 else ''}  "
                f"{step.iterations_per_second:.2f} it/s\n"
                f"eta {human_duration(step.eta_seconds)}  peak {human_bytes(step.peak_memory_bytes)}\n"
                + (f"predicted {human_bytes(self.predicted_peak)}\n" if self.predicted_peak else "")
                + (f"limits {self.memory_limits}\n" if self.memory_limits else "")
                + f"checkpoint {self.last_checkpoint}"
            )
            if step.reward_margin is not None:
                text += f"\nmargin {step.reward_margin:.3f}  accuracy {step.reward_accuracy:.2f}"
            if step.reward is not None:
                text += f"\nreward {step.reward:.3f}±{step.reward_std:.3f}  kl {step.kl:.4f}"
                text += f"\nlength {step.completion_tokens:.1f}  flat groups {step.flat_groups:.0%}"
            valid = self.valid_rewards
            if valid is not None and valid.reward_margin is not None:
                text += f"\nvalid margin {valid.reward_margin:.3f}  accuracy {valid.reward_accuracy:.2f}"
            elif valid is not None and valid.reward is not None:
                text += f"\nvalid reward {valid.reward:.3f} (greedy)"
            if self.drift is not None and self.drift.drift is not None:
                drift = self.drift
                text += f"\ndrift {drift.drift:.2f}: {drift.changed} of {drift.prompts} general answers changed"
                if drift.known:
                    text += f"\n{drift.kept} of {drift.known} facts the base knew kept"
        self.query_one("#run-numbers", Static).update(text)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """The footer offers only what applies now: cancel while a run trains, rewards for preference runs,
        chat and adapters once a run has ended."""
        if action == "cancel_training":
            return self.app.training_running
        if action == "toggle_rewards":
            charts = self.query(LossChart)  # none yet while the screen is being composed
            return bool(charts) and charts.first().has_rewards
        if action in ("open_in_chat", "open_in_adapters"):
            return bool(self.adapter_path) and not self.app.training_running
        if action in ("remove_job", "move_job"):  # only while the queue list has the keys
            lists = self.query("#queue-list")
            return bool(lists) and lists.first().has_focus
        if action == "run_queue":
            return any(job.status == "pending" for job in getattr(self, "queue_jobs", []))
        return True

    def action_toggle_learning_rate(self) -> None:
        self.query_one(LossChart).toggle_learning_rate()

    def action_toggle_rewards(self) -> None:
        self.query_one(LossChart).toggle("rewards")

    def action_cancel_training(self) -> None:
        if not self.app.training_running:
            self.notify("No training is running.", severity="warning")
            return

        def confirmed(stop: bool | None) -> None:
            if stop:
                self.post_message(TrainingCancelRequested())
                self.query_one(RichLog).write("stopping after this step...")

        question = "Stop training? The adapter is saved after the current step."
        self.app.push_screen(ConfirmDialog(question, "Stop and save"), confirmed)

    def finished_adapter(self) -> str | None:
        if not self.adapter_path or self.app.training_running:
            self.notify("No finished run to open yet.", severity="warning")
            return None
        return Path(self.adapter_path).name

    def action_open_in_chat(self) -> None:
        if (name := self.finished_adapter()) is not None:
            self.post_message(AdapterChatRequested(name))

    def action_open_in_adapters(self) -> None:
        if (name := self.finished_adapter()) is not None:
            self.post_message(AdapterShowRequested(name))
