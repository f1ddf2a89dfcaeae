"""The Textual app: one mode per area, themes from files, the training worker.

The app makes the five area screens and keeps typed references to them. It
(not a screen) owns the training worker, so switching areas never stops a
run. The worker never touches widgets: it posts each training event as a
message; the app's handler keeps the shown run's events and hands each to the
dashboard, which replays them all when it is mounted. Screens ask for moves
between areas with the requests in messages.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.widgets import Input

from lora_tui.core.adapters.layout import EVENTS, latest_checkpoint
from lora_tui.core.errors import UserError
from lora_tui.core.locations import Locations
from lora_tui.core.threads import mlx_worker_thread
from lora_tui.core.training import launch
from lora_tui.core.training.background import go_on_in_background, runs_in_progress
from lora_tui.core.training.events import EventsFollower, Failed, read_events
from lora_tui.core.training.job import TrainingJob
from lora_tui.core.training.loop import run_training
from lora_tui.gc_pauses import freeze_long_lived_objects
from lora_tui.messages import (
    AdapterChatRequested,
    AdapterShowRequested,
    AdapterTrainAgainRequested,
    DatasetTrainRequested,
    ModelFetchEnded,
    ModelFetchProgress,
    ModelFetchRequested,
    ModelFetchStarted,
    ModelFetchStopRequested,
    ServingEnded,
    ServingStarted,
    ServingToggleRequested,
    TrainingCancelRequested,
    TrainingEventPosted,
    TrainingRequested,
)
from lora_tui.screens.adapters import AdaptersScreen
from lora_tui.screens.chat import ChatScreen
from lora_tui.screens.dashboard import DashboardScreen
from lora_tui.screens.datasets import DatasetsScreen
from lora_tui.screens.dialogs import QuitDialog
from lora_tui.screens.evaluation import EvalScreen
from lora_tui.screens.help import HelpScreen
from lora_tui.screens.model_fetch import FetchModelDialog
from lora_tui.screens.train import TrainScreen
from lora_tui.settings import Settings
from lora_tui.themes import BUILT_IN_THEMES, load_themes
from lora_tui.widgets.area_bar import AREAS

AREA_KEYS = Binding.Group("Areas", compact=True)

FOLLOW_SECONDS = 0.5


class AreaCommands(Provider):
    """Every area and action in the command palette."""

    async def discover(self) -> Hits:
        """With nothing typed yet, the palette lists every command at once."""
        for text, callback, help_text in self.commands():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self.commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)

    def commands(self) -> list[tuple[str, object, str]]:
        """(what it says, what it does, one line of help) for each area, action and run to follow."""
        app = self.app
        commands = [(f"Go to {area}", partial(app.switch_mode, area), f"open the {area} area") for area in AREAS]
        commands += [("Cancel training", app.action_cancel_training, "stop the run after this step, saving it")]
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if binding.description and active.node is not app and active.enabled:
                commands.append(
                    (
                        binding.description,
                        partial(app.run_action, binding.action, active.node),
                        binding.tooltip or f"key: {app.get_key_display(binding)}",
                    )
                )
        for events_file in sorted(app.locations.adapters_dir.glob(f"*/{EVENTS}")):
            name = events_file.parent.name
            commands.append(
                (
                    f"Follow run: {name}",
                    partial(app.follow_run, events_file.parent),
                    "show its curves; keeps up while another terminal trains it",
                )
            )
        return commands


# Ctrl-C is a key in the TUI (raw mode), not a signal; these two come from outside.
APP_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
EXIT_GRACE_SECONDS = 5.0


class LoraTuiApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "lora-tui"
    COMMANDS = App.COMMANDS | {AreaCommands}
    BINDINGS = [
        Binding("1", "switch_mode('datasets')", "Datasets", id="area-datasets", group=AREA_KEYS),
        Binding("2", "switch_mode('train')", "Train", id="area-train", group=AREA_KEYS),
        Binding("3", "switch_mode('dashboard')", "Dashboard", id="area-dashboard", group=AREA_KEYS),
        Binding("4", "switch_mode('adapters')", "Adapters", id="area-adapters", group=AREA_KEYS),
        Binding("5", "switch_mode('chat')", "Chat", id="area-chat", group=AREA_KEYS),
        Binding("ctrl+q", "quit", "Quit", id="quit", show=False),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
        Binding("f1", "help(True)", "Help", id="help-f1", show=False),  # also from inside a text box
        Binding("escape", "leave_field", show=False),
    ]
    # Workers that run MLX: the process must not exit under them (MLX aborts).
    MLX_WORKER_GROUPS = {
        "training",
        "chat-generate",
        "train-estimate",
        "adapter-actions",
        "dataset-jobs",
        "adapter-eval",
        "fetch-model",
        "serving",
    }

    def __init__(self, locations: Locations, settings: Settings) -> None:
        super().__init__()
        self.locations = locations
        self.settings = settings
        self.stop_flag = threading.Event()
        self.training_running = False
        self.running_job: TrainingJob | None = None  # the run the worker trains, while it does
        self.hand_off: TrainingJob | None = None  # a run to go on in the background once the app has stopped it
        self.handed_off_log: Path | None = None
        self.exit_watchdog = False  # set when the app owns the process (the lora-tui command, not a test's pilot)
        self.stopped_by: str | None = None  # the signal that ended the app, if one did
        self.datasets_screen = DatasetsScreen()
        self.train_screen = TrainScreen()
        self.dashboard_screen = DashboardScreen()
        self.adapters_screen = AdaptersScreen()
        self.chat_screen = ChatScreen()
        for area, screen in self.area_screens().items():
            self.add_mode(area, partial(_same_screen, screen))
        self.run_events: list = []  # the shown run's events; the dashboard replays them on mount
        self.fetch_stop = threading.Event()
        self.fetch_dialog: FetchModelDialog | None = None
        self.fetch_picker = None  # the model picker that asked for the model being fetched
        self.fetching = False
        self.service = None  # the OpenAI-style server, while one runs (core.serving.server.Service)
        self.serving_starting = False
        self.following: EventsFollower | None = None
        self.follow_timer = None
        themes, problems = load_themes(BUILT_IN_THEMES, locations.user_themes_dir)
        for theme in themes:
            self.register_theme(theme)
        self.theme_problems = problems
        self.theme = settings.theme if settings.theme in self.available_themes else "lora-dark"

    def area_screens(self) -> dict[str, Screen]:
        return {
            "datasets": self.datasets_screen,
            "train": self.train_screen,
            "dashboard": self.dashboard_screen,
            "adapters": self.adapters_screen,
            "chat": self.chat_screen,
        }

    def on_mount(self) -> None:
        self.listen_for_stop_signals()
        for problem in self.theme_problems:
            self.notify(f"{problem.path}: {problem.message}; theme skipped.", severity="warning", timeout=10)
        self.switch_mode("datasets" if self.is_newcomer() else "train")
        self.call_after_refresh(freeze_long_lived_objects)  # once the first screen is up
        self.follow_background_run()

    def follow_background_run(self) -> None:
        """A run training without the app (left running at quit, or `lora-tui train` elsewhere): followed."""
        for name, who in runs_in_progress(self.locations.adapters_dir):
            self.notify(f"{name} is training in the background (pid {who.pid}): the Dashboard follows it.", timeout=8)
            self.follow_run(self.locations.adapters_dir / name, switch=False)
            return

    def is_newcomer(self) -> bool:
        """No adapter and no dataset opened yet: the first area is Datasets, with its demo-dataset offer."""
        adapters = self.locations.adapters_dir
        has_adapters = adapters.is_dir() and any(adapters.iterdir())
        return not has_adapters and not self.locations.recent_datasets_file.exists()

    def watch_theme(self, theme: str) -> None:
        if getattr(self, "settings", None) is not None and self.settings.theme != theme:
            self.settings.theme = theme
            try:
                Settings.update(self.locations, theme=theme)  # other settings as the file has them now
            except (OSError, UserError) as exc:
                self.notify(f"Could not save the theme choice: {exc}", severity="warning")

    def get_system_commands(self, screen: Screen):
        """Textual's own commands, with lora-tui's help (Esc closes it) in place of the Keys panel."""
        for command in super().get_system_commands(screen):
            if command.title != "Keys":
                yield command
        yield SystemCommand("Help", "What this area is for, and its keys (? or F1)", self.action_help)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "help":  # an area's help (a dialog shows its keys in its footer); in a text box ? is typed
            in_area = self.screen in self.area_screens().values()
            return in_area and (bool(parameters) or not isinstance(self.focused, Input))
        return True

    def action_leave_field(self) -> None:
        """Esc leaves a text box (where a screen has no Esc of its own), so the area keys work again."""
        if isinstance(self.focused, Input):
            self.screen.set_focus(None)

    def action_help(self, from_anywhere: bool = False) -> None:
        """What the area in front is for and its keys (a dialog's own keys are in its footer).
        `from_anywhere` is F1's: check_action lets it through inside a text box, where ? is typed."""
        for area, screen in self.area_screens().items():
            if screen is self.screen:
                self.push_screen(HelpScreen(screen, area.capitalize()))
                return

    # Training ------------------------------------------------------------------

    @on(TrainingRequested)
    def start_training(self, message: TrainingRequested) -> None:
        if self.training_running:
            self.notify("A run is already training; cancel it first.", severity="warning")
            return
        self.following = None
        self.training_running = True
        self.running_job = message.job if message.hostfile is None else None  # only a local run is handed off
        self.stop_flag.clear()
        self.run_events = read_events(message.job.adapter_dir / EVENTS) if message.job.resume else []
        if self.dashboard_screen.is_mounted:  # a resumed run shows its whole history, not the steps since
            self.dashboard_screen.reset()
            for event in self.run_events:
                self.dashboard_screen.show_event(event)
            self.dashboard_screen.starting(message.job.adapter_dir.name)
        self.switch_mode("dashboard")
        self.train(message.job, message.hostfile)

    @work(thread=True, exclusive=True, group="training", exit_on_error=False)
    def train(self, job: TrainingJob, hostfile: Path | None = None) -> None:
        with mlx_worker_thread():
            self.run_job(job, hostfile)
        freeze_long_lived_objects()  # lets the run's model go

    def run_job(self, job: TrainingJob, hostfile: Path | None) -> None:
        """In the worker: the loop here, or ranks launched on the hosts and watched through rank 0's events."""

        def listener(event) -> None:
            if event.type == "started":  # the model and data are loaded and stay for the run
                freeze_long_lived_objects()
            self.post_message(TrainingEventPosted(event))

        if hostfile is None:
            run_training(job, listener, self.stop_flag)
            return
        command = launch.launch_command(job, hostfile)
        log = self.locations.runs_dir / job.adapter_dir.name / "launch.log"  # the ranks' own output
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as output:
            launch.run_distributed(job, listener, self.stop_flag, command, output)

    @on(TrainingEventPosted)
    def route_event(self, message: TrainingEventPosted) -> None:
        if message.event.type in ("finished", "cancelled", "failed") and message.live:
            self.training_running = False
            if isinstance(message.event, Failed):
                self.notify(
                    f"Training failed: {message.event.reason} {message.event.advice}".rstrip(),
                    severity="error",
                    timeout=15,
                )
            else:
                self.notify(f"Training {message.event.type}: {message.event.adapter_path}")
        if message.event.type == "started" and not message.event.resumed_from_step:
            self.run_events = []
        self.run_events.append(message.event)
        if self.dashboard_screen.is_mounted:
            self.dashboard_screen.show_event(message.event)

    def follow_run(self, adapter_dir, switch: bool = True) -> None:
        """Replay a run's events.jsonl, then keep reading what is appended to it (on the Dashboard, which
        `switch` brings up)."""
        if self.training_running:
            self.notify("A run is training here; the dashboard shows it.", severity="warning")
            return
        self.following = EventsFollower(adapter_dir / EVENTS)
        self.run_events = []
        if self.dashboard_screen.is_mounted:
            self.dashboard_screen.reset()
        self.read_followed_run()
        if self.follow_timer is None:
            self.follow_timer = self.set_interval(FOLLOW_SECONDS, self.read_followed_run)
        if switch:
            self.switch_mode("dashboard")

    def read_followed_run(self) -> None:
        if self.following is None or self.training_running:
            return
        for event in self.following.new_events():
            self.route_event(TrainingEventPosted(event, live=False))

    # Between areas ---------------------------------------------------------------

    @on(AdapterChatRequested)
    async def open_adapter_in_chat(self, message: AdapterChatRequested) -> None:
        await self.switch_mode("chat")
        self.chat_screen.choose_adapter(message.name)

    @on(AdapterShowRequested)
    async def show_adapter(self, message: AdapterShowRequested) -> None:
        await self.switch_mode("adapters")
        self.adapters_screen.select_adapter(message.name)

    @on(DatasetTrainRequested)
    async def train_on_dataset(self, message: DatasetTrainRequested) -> None:
        await self.switch_mode("train")
        self.train_screen.use_dataset(message.path)

    @on(AdapterTrainAgainRequested)
    async def train_adapter_again(self, message: AdapterTrainAgainRequested) -> None:
        await self.switch_mode("train")
        self.train_screen.fill_from_adapter(message.adapter)

    # Quitting -------------------------------------------------------------------

    # Getting models: a GGUF from Ollama or LM Studio, or a download from the hub --------

    @on(ModelFetchRequested)
    def open_fetch_dialog(self, message: ModelFetchRequested) -> None:
        if self.fetching:
            self.notify("A model is being fetched already; its dialog reopens when it is done.", severity="warning")
            return
        self.fetch_picker = message.picker
        self.fetch_dialog = FetchModelDialog(message.stored)
        self.push_screen(self.fetch_dialog)

    @on(ModelFetchStarted)
    def start_fetch(self, message: ModelFetchStarted) -> None:
        self.fetch_stop.clear()
        self.fetching = True
        self.fetch_model(message)

    @work(thread=True, exclusive=True, group="fetch-model", exit_on_error=False)
    def fetch_model(self, request: ModelFetchStarted) -> None:
        from lora_tui.core.models.gguf_import import import_gguf
        from lora_tui.core.models.hub import pull_model

        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            self.post_message(ModelFetchProgress(done, total, started))

        with mlx_worker_thread():
            try:
                if request.stored is not None:
                    models_dir = self.locations.models_dir
                    path = import_gguf(
                        request.stored.path, models_dir, request.name, progress=progress, stop=self.fetch_stop
                    )
                else:
                    path = pull_model(request.repo, progress=progress)
            except UserError as exc:
                self.post_message(ModelFetchEnded(None, str(exc)))
                return
            except OSError as exc:
                self.post_message(ModelFetchEnded(None, f"Could not write the model: {exc.strerror or exc}."))
                return
        self.post_message(ModelFetchEnded(path))

    @on(ModelFetchProgress)
    def show_fetch_progress(self, message: ModelFetchProgress) -> None:
        if self.fetch_dialog in self.screen_stack:
            self.fetch_dialog.show_progress(message.done, message.total, message.started)

    @on(ModelFetchStopRequested)
    def stop_fetch(self) -> None:
        self.fetch_stop.set()

    @on(ModelFetchEnded)
    def fetch_ended(self, message: ModelFetchEnded) -> None:
        self.fetching = False
        dialog_open = self.fetch_dialog in self.screen_stack
        if message.error:
            if dialog_open:
                self.fetch_dialog.failed(message.error)
            else:
                self.notify(message.error, severity="error", timeout=15)
            return
        if dialog_open:
            self.fetch_dialog.dismiss(None)
        self.notify(f"{message.path.name} is ready: chosen in the model list.", timeout=6)
        if self.fetch_picker is not None and self.fetch_picker.is_attached:
            self.fetch_picker.fetched(message.path)

    # Serving: an adapter's base and all its adapters, as OpenAI's API on 127.0.0.1 ----------

    @on(ServingToggleRequested)
    def toggle_serving(self, message: ServingToggleRequested) -> None:
        if self.serving_starting:
            self.notify("The server is starting; one moment.", severity="warning")
        elif self.service is not None:
            self.serving_starting = True
            self.stop_serving()
        else:
            self.serving_starting = True
            self.notify(f"Loading {message.adapter.base_model or 'the base model'} to serve it ...", timeout=4)
            self.start_serving(message.adapter)

    @work(thread=True, exclusive=True, group="serving", exit_on_error=False)
    def start_serving(self, adapter) -> None:
        from lora_tui.core.serving.plan import plan_for_adapter
        from lora_tui.core.serving.server import serve_in_background

        locations = self.locations
        try:
            with mlx_worker_thread():
                plan = plan_for_adapter(
                    locations.adapters_dir, locations.models_dir, self.settings.extra_model_dirs(), adapter
                )
                service = serve_in_background(plan)
        except UserError as exc:
            self.post_message(ServingEnded(str(exc)))
            return
        except Exception as exc:  # a model that fails to load: say so, and let w try again
            self.post_message(ServingEnded(f"Could not serve: {type(exc).__name__}: {exc}"))
            return
        self.post_message(ServingStarted(service))

    @work(thread=True, exclusive=True, group="serving", exit_on_error=False)
    def stop_serving(self) -> None:
        if self.service is not None:
            self.service.stop()
        self.post_message(ServingEnded())

    @on(ServingStarted)
    def serving_started(self, message: ServingStarted) -> None:
        self.serving_starting = False
        self.service = message.service
        self.notify(f"Serving at {message.service.url} (w on Adapters stops it).", timeout=8)
        self.adapters_screen.show_serving()

    @on(ServingEnded)
    def serving_ended(self, message: ServingEnded) -> None:
        self.serving_starting = False
        self.service = None
        if message.error:
            self.notify(message.error, severity="error", timeout=15)
        else:
            self.notify("The server has stopped.", timeout=4)
        self.adapters_screen.show_serving()

    # Signals: SIGTERM (kill, launchd, tmux kill-session) and SIGHUP (a dropped SSH connection) ------

    def listen_for_stop_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for number in APP_STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(number, self.stop_for_signal, number)

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for number in APP_STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(number)

    def stop_for_signal(self, number: int) -> None:
        """As quitting does, without asking: the run stops after its step and is saved, then the app exits. When
        the terminal went away (SIGHUP: a dropped SSH connection) a local run goes on in the background."""
        self.stopped_by = signal.Signals(number).name
        if number == signal.SIGHUP and self.training_running:
            self.hand_off = self.running_job
        self.quit_when_idle()

    def action_quit(self) -> None:
        if not self.training_running:
            self.quit_when_idle()
            return
        name = self.running_job.adapter_dir.name if self.running_job else "A run"

        def chosen(answer: str | None) -> None:
            if answer is None:
                return
            self.hand_off = self.running_job if answer == "leave" else None
            self.quit_when_idle()

        self.push_screen(QuitDialog(name, can_leave=self.running_job is not None), chosen)

    @work(group="quitting", exclusive=True)
    async def quit_when_idle(self) -> None:
        """Stop training and generation, let their threads end, then exit."""
        self.stop_flag.set()
        self.chat_screen.stop_flag.set()
        if isinstance(self.screen, EvalScreen):
            self.screen.stop_flag.set()
        if self.service is not None:
            await asyncio.to_thread(self.service.stop)
        busy = [w for w in self.workers if w.group in self.MLX_WORKER_GROUPS and not w.is_finished]
        if busy:
            self.notify("Finishing the current step before quitting...", timeout=30)
            await self.workers.wait_for_complete(busy)
        if self.hand_off is not None and latest_checkpoint(self.hand_off.adapter_dir) is not None:
            self.handed_off_log = go_on_in_background(self.hand_off, self.locations)  # else it had not begun
        if self.stopped_by == "SIGHUP" and self.exit_watchdog:
            # The terminal is gone: restoring it can hang on the dead pty (seen in tmux kill-session), which left
            # a process holding the model. Everything is saved by now; make sure the process ends.
            watchdog = threading.Timer(EXIT_GRACE_SECONDS, os._exit, args=(128 + signal.SIGHUP,))
            watchdog.daemon = True  # a normal exit does not wait for it
            watchdog.start()
        self.exit()

    @on(TrainingCancelRequested)
    def cancel_training(self) -> None:
        self.stop_flag.set()

    async def action_cancel_training(self) -> None:
        await self.switch_mode("dashboard")
        self.dashboard_screen.action_cancel_training()


def _same_screen(screen: Screen) -> Screen:
    """A mode's base screen: the one the app made (Textual's MODES take a factory, not an instance)."""
    return screen


def make_app(locations: Locations | None = None, settings: Settings | None = None) -> LoraTuiApp:
    locations = locations or Locations.from_environment()
    return LoraTuiApp(locations, settings or Settings.load(locations))
