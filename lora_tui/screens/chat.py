"""The Chat screen: stream from a base model or an adapter, or from two side by side.

One generation worker at a time runs on the screen (a mode screen, never
popped). It posts each text piece; the handlers write them to a MarkdownStream,
which batches pieces that arrive faster than the screen can render.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Checkbox, Input, Label, Markdown, Select, Static, TextArea
from textual.widgets.markdown import MarkdownStream

from lora_tui.core.adapters.packages import training_system_prompt
from lora_tui.core.adapters.registry import adapter_base_path, get_adapter, list_adapters
from lora_tui.core.data.records import append_chat_example, append_preference_pair
from lora_tui.core.errors import UserError
from lora_tui.core.inference.generate import PLAIN_COMPLETION_NOTE, GenerationStats, Generator, Sampling, Turn
from lora_tui.core.serving.client import stream_chat
from lora_tui.core.threads import mlx_worker_thread
from lora_tui.gc_pauses import freeze_long_lived_objects
from lora_tui.screens.dialogs import ConfirmDialog, Dialog, new_path
from lora_tui.widgets.app_footer import AppFooter
from lora_tui.widgets.area_bar import AreaBar
from lora_tui.widgets.model_picker import ModelPicker
from lora_tui.worker_errors import ReportsWorkerErrors

ADAPTER_PREFIX = "lora:"
SERVED_PREFIX = "served:"  # a model of lora-tui's running server, talked to over HTTP as any client does
THINKING_TIP = "for a model whose chat template can think first (Qwen3); off: it answers at once"
SAMPLING_FIELDS = [  # (Sampling field, label, parser)
    ("temperature", "temperature", float),
    ("top_p", "top-p", float),
    ("top_k", "top-k", int),
    ("min_p", "min-p", float),
    ("repetition_penalty", "repeat penalty", float),
    ("max_tokens", "max tokens", int),
    ("seed", "seed", int),
]


def as_messages(turns: list[Turn], system: str | None) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": turn.role, "content": turn.content} for turn in turns
    ]


class ChatModelPicker(ModelPicker):
    """Base models by path, and every adapter as lora/NAME."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.adapters: list = []

    def gather(self) -> list:
        self.adapters = [a for a in list_adapters(self.app.locations.adapters_dir) if a.usable]
        return super().gather()

    def extra_options(self) -> list[tuple[str, str]]:
        options = [(f"lora/{a.name}", ADAPTER_PREFIX + a.name) for a in self.adapters]
        service = self.app.service
        served = service.engine.model_names if service is not None else []
        return options + [(f"served/{name} (over HTTP)", SERVED_PREFIX + name) for name in served]


@dataclass
class TextGenerated(Message):
    side: str
    text: str


@dataclass
class SystemPromptFound(Message):
    adapter: str
    system: str  # "" when the training records share none


@dataclass
class GenerationEnded(Message):
    side: str
    stats: GenerationStats | None
    error: str | None = None


@dataclass
class Target:
    """What one side of the chat talks to."""

    label: str
    base: Path
    adapter: Path | None
    served: str | None = None  # the model's name on the server at `url`
    url: str | None = None


@dataclass
class Side:
    """One conversation pane: its history and the reply being streamed into it."""

    history: list[Turn] = field(default_factory=list)
    reply: str = ""
    stream: MarkdownStream | None = None  # while generating


@dataclass(frozen=True)
class SaveRequest:
    path: Path
    side: str


class SaveExampleDialog(Dialog):
    heading = "Save the last exchange as a training example (chat JSONL)"
    ok_label = "Append"

    def __init__(self, default: Path, compare: bool) -> None:
        super().__init__()
        self.default, self.compare = default, compare

    def fields(self) -> ComposeResult:
        yield self.row("append to", Input(str(self.default), id="example-path"))
        if self.compare:
            yield self.row("which side (a/b)", Input("b", id="example-side"))

    def request(self) -> SaveRequest:
        side = self.value("example-side").strip().lower() if self.compare else "a"
        if side not in ("a", "b"):
            raise UserError("Choose side a (left) or b (right).")
        return SaveRequest(self.ask_before_new_folder(new_path(self.value("example-path"), "file")), side)


class ChatScreen(ReportsWorkerErrors, Screen):
    PURPOSE = """Talk to the base model or any adapter, with the sampling settings of your choice;
    compare two side by side, and save good exchanges or preference pairs as training data."""
    AUTO_FOCUS = "#chat-input"
    BINDINGS = [
        Binding("escape", "stop", "Stop", id="chat-stop", tooltip="stop the reply; when idle, leave the message box"),
        Binding("ctrl+b", "compare", "Compare", id="chat-compare", tooltip="two models side by side"),
        Binding("ctrl+s", "save_example", "Save", id="chat-save-example", tooltip="the exchange as a training example"),
        Binding("ctrl+n", "new_chat", "New", id="chat-new", tooltip="a new chat"),
        Binding("ctrl+o", "toggle_settings", "Settings", id="chat-settings"),
        Binding("ctrl+t", "try_again", "Retry", id="chat-try-again", tooltip="a second answer to choose from"),
        Binding("ctrl+l", "prefer('a')", "A wins", id="chat-prefer-a", tooltip="save a pair: a (left, first) chosen"),
        Binding("ctrl+r", "prefer('b')", "B wins", id="chat-prefer-b", tooltip="save a pair: b (right, second) chosen"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sides = {"a": Side(), "b": Side()}
        self.compare = False
        self.generating = False
        self.stop_flag = threading.Event()
        self.generator = None  # core.generate.Generator, one base in memory at a time
        self.filled_system: str | None = None  # the system prompt filled in from an adapter's training data
        self.last_example_file: Path | None = None
        self.pairs_file: Path | None = None
        self.saved_pairs: set[tuple[str, str]] = set()  # (chosen, rejected) already written this session
        self.second_try = False  # single chat: the last prompt was answered twice (side b holds the second answer)
        self.stats_lines: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield AreaBar("chat")
        with Horizontal(id="chat-models"):
            yield ChatModelPicker(id="chat-model-a", prompt="model or lora/adapter", compact=True)
            yield ChatModelPicker(id="chat-model-b", prompt="compare with", compact=True, preselect=False)
        yield Static("", id="chat-stats")
        with Horizontal(id="chat-body"):
            with Horizontal(id="chat-panes"):
                yield VerticalScroll(id="pane-a", classes="chat-pane")
                yield VerticalScroll(id="pane-b", classes="chat-pane")
            with VerticalScroll(id="chat-settings-panel"):
                yield Label("system prompt", classes="section-label")
                yield TextArea("", id="system-prompt", soft_wrap=True, show_line_numbers=False)
                defaults = Sampling()
                for name, label, _ in SAMPLING_FIELDS:
                    value = getattr(defaults, name)
                    yield Label(label, classes="section-label")
                    yield Input(
                        "" if value is None else str(value),
                        placeholder="off",
                        id=f"sampling-{name}",
                        compact=True,
                        classes="sampling-input",
                    )
                yield Checkbox("thinking", id="sampling-thinking", compact=True, tooltip=THINKING_TIP)
                yield Static("", id="sampling-problem")
        yield Input(placeholder="message (enter sends; esc stops a reply, or leaves this box)", id="chat-input")
        yield AppFooter()

    def on_mount(self) -> None:
        self.query_one("#chat-model-b").display = False
        self.query_one("#pane-b").display = False
        self.query_one("#chat-settings-panel").display = self.app.size.width >= 100

    def on_screen_resume(self) -> None:
        for picker in self.query(ChatModelPicker):
            picker.discover()

    def choose_adapter(self, name: str) -> None:
        self.query_one("#chat-model-a", ChatModelPicker).choose(ADAPTER_PREFIX + name)

    # Settings ------------------------------------------------------------------------

    def sampling(self) -> Sampling:
        values = {name: self.sampling_value(name) for name, _, _ in SAMPLING_FIELDS}
        values["thinking"] = self.query_one("#sampling-thinking", Checkbox).value
        return Sampling(**{name: value for name, value in values.items() if value is not None}).check()

    def sampling_value(self, name: str):
        """One sampling box's value (None: the seed left blank), or a UserError naming it."""
        label, parse = next((label, parse) for field, label, parse in SAMPLING_FIELDS if field == name)
        text = self.query_one(f"#sampling-{name}", Input).value.strip()
        if not text:
            if name != "seed":
                raise UserError(f"Give a value for {label}.")
            return None
        try:
            return parse(text)
        except ValueError:
            raise UserError(f"{label} must be a {'whole ' if parse is int else ''}number, not {text!r}.") from None

    @on(Select.Changed, "#chat-model-a")
    def adapter_chosen(self, event: Select.Changed) -> None:
        value = str(event.value)
        box = self.query_one("#system-prompt", TextArea)
        if value.startswith(ADAPTER_PREFIX) and box.text.strip() in ("", self.filled_system or ""):
            self.fill_system_prompt(value.removeprefix(ADAPTER_PREFIX))

    @work(thread=True, exclusive=True, group="chat-system-prompt", exit_on_error=False)
    def fill_system_prompt(self, name: str) -> None:
        """The system prompt the adapter was trained with (every record's), so the chat matches its training."""
        try:
            system = training_system_prompt(get_adapter(self.app.locations.adapters_dir, name))
        except UserError:
            return
        self.post_message(SystemPromptFound(name, system or ""))

    @on(SystemPromptFound)
    def show_system_prompt(self, message: SystemPromptFound) -> None:
        name, system = message.adapter, message.system
        box = self.query_one("#system-prompt", TextArea)
        if box.text.strip() not in ("", self.filled_system or ""):
            return  # the user wrote one meanwhile
        box.text, self.filled_system = system, system
        if system:
            self.notify(f"System prompt from {name}'s training data (Ctrl+O shows it).", timeout=5)

    @on(Input.Changed, ".sampling-input")
    def check_sampling(self) -> None:
        """Bad values are marked as they are typed, not found at send."""
        problems = []
        for name, _, _ in SAMPLING_FIELDS:
            box = self.query_one(f"#sampling-{name}", Input)
            problem = self.field_problem(name)
            box.set_class(problem is not None, "-bad-value")
            if problem is not None:
                problems.append(problem)
        if not problems:
            try:
                self.sampling()
            except UserError as exc:
                problems.append(str(exc))
        self.query_one("#sampling-problem", Static).update(problems[0] if problems else "")

    def field_problem(self, name: str) -> str | None:
        """What is wrong with one sampling box alone, or None."""
        try:
            self.sampling_value(name)
        except UserError as exc:
            return str(exc)
        return None

    def system_prompt(self) -> str | None:
        return self.query_one("#system-prompt", TextArea).text.strip() or None

    def target(self, picker_id: str) -> Target:
        value = self.query_one(picker_id, ChatModelPicker).value
        if value is Select.NULL:
            raise UserError("Choose a model (or an adapter) first.")
        if str(value).startswith(SERVED_PREFIX):
            return self.served_target(str(value).removeprefix(SERVED_PREFIX))
        if not str(value).startswith(ADAPTER_PREFIX):
            return Target(Path(value).name, Path(value), None)
        info = get_adapter(self.app.locations.adapters_dir, str(value).removeprefix(ADAPTER_PREFIX))
        base = adapter_base_path(info, self.app.locations.models_dir, self.app.settings.extra_model_dirs())
        return Target(f"lora/{info.name}", base, info.path)

    def served_target(self, name: str) -> Target:
        service = self.app.service
        if service is None or name not in service.engine.model_names:
            raise UserError(f"The server that served {name} has stopped; choose another model.")
        return Target(f"served/{name}", service.plan.model_path, None, served=name, url=service.url)

    def action_toggle_settings(self) -> None:
        panel = self.query_one("#chat-settings-panel")
        panel.display = not panel.display
        if not panel.display and self.focused is not None and panel in self.focused.ancestors:
            self.query_one("#chat-input", Input).focus()  # not left in a box that is no longer shown

    # Sending ------------------------------------------------------------------------

    @on(Input.Submitted, "#chat-input")
    def send(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt:
            return
        if self.generating:
            self.notify("Still generating: esc stops it.", severity="warning")
            return
        try:
            sampling, system = self.sampling(), self.system_prompt()
            targets = {"a": self.target("#chat-model-a")}
            if self.compare:
                targets["b"] = self.target("#chat-model-b")
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        event.input.value = ""
        self.end_second_try()
        self.stats_lines.clear()
        self.stop_flag.clear()
        self.generating = True
        for side, target in targets.items():
            self.sides[side].history.append(Turn("user", prompt))
            self.start_reply(side, prompt, target.label)
        self.generate(targets, {side: list(self.sides[side].history) for side in targets}, sampling, system)

    def start_reply(self, side: str, prompt: str | None, label: str, pane_side: str | None = None) -> None:
        """A reply streaming into its side's pane (or another's), under the prompt (None: no prompt shown again)."""
        pane = self.query_one(f"#pane-{pane_side or side}", VerticalScroll)
        reply = Markdown("", classes="assistant-turn")
        if prompt is not None:
            pane.mount(Static(Text(prompt), classes="user-turn"))
        pane.mount(Label(label, classes="turn-label"))
        pane.mount(reply)
        pane.anchor()  # keep following the reply while the reader stays at the bottom
        self.sides[side].reply = ""
        self.sides[side].stream = Markdown.get_stream(reply)

    @work(thread=True, exclusive=True, group="chat-generate", exit_on_error=False)
    def generate(
        self, targets: dict[str, Target], histories: dict[str, list[Turn]], sampling: Sampling, system: str | None
    ) -> None:
        """One side after the other, each with the same sampling and seed."""
        with mlx_worker_thread():
            for side, target in targets.items():
                stats = GenerationStats()
                try:
                    for piece in self.pieces(target, histories[side], sampling, system, stats):
                        self.post_message(TextGenerated(side, piece))
                except UserError as exc:
                    self.post_message(GenerationEnded(side, None, str(exc)))
                    continue
                except Exception as exc:  # a model that fails mid-generation: say so, keep the conversation
                    self.post_message(GenerationEnded(side, None, f"Generation failed: {type(exc).__name__}: {exc}"))
                    continue
                self.post_message(GenerationEnded(side, stats))
                if self.stop_flag.is_set():
                    break

    def pieces(self, target: Target, history: list[Turn], sampling: Sampling, system: str | None, stats):
        """The reply's pieces: from this screen's own model, or from the server over HTTP."""
        if target.served is None:
            return self.generator_for(target).stream(history, sampling, system, stop=self.stop_flag, stats=stats)
        messages = as_messages(history, system)
        return stream_chat(target.url, target.served, messages, sampling, stop=self.stop_flag, stats=stats)

    def generator_for(self, target: Target):
        if self.generator is None or self.generator.model_path != target.base:
            self.generator = None  # let the old base go before the new one loads
            try:
                self.generator = Generator(target.base)
            except UserError:
                raise
            except Exception as exc:  # weights or config mlx-lm cannot read
                raise UserError(f"{target.base}: the model failed to load ({type(exc).__name__}: {exc}).") from None
            freeze_long_lived_objects()  # the base stays loaded for the conversation
        self.generator.use_adapter(target.adapter)
        return self.generator

    @on(TextGenerated)
    async def show_text(self, message: TextGenerated) -> None:
        side = self.sides[message.side]
        side.reply += message.text
        await side.stream.write(message.text)

    @on(GenerationEnded)
    async def reply_ended(self, message: GenerationEnded) -> None:
        side = self.sides[message.side]
        if side.stream is not None:
            await side.stream.stop()
            side.stream = None
        if message.error is not None:
            side.history.pop()  # the question stays on screen; the next one is not sent twice
            pane = self.query_one(f"#pane-{message.side}", VerticalScroll)
            pane.mount(Static(Text(message.error), classes="turn-error"))
            self.notify(message.error, severity="error", timeout=10)
        else:
            side.history.append(Turn("assistant", side.reply))
            self.show_stats(message.side, message.stats)
        if all(s.stream is None for s in self.sides.values()):
            self.generating = False
            self.refresh_bindings()

    def show_stats(self, side: str, stats: GenerationStats) -> None:
        line = (
            f"{stats.generated_tokens} tokens, first after {stats.time_to_first_token * 1000:.0f} ms, "
            f"{stats.tokens_per_second:.1f} tok/s ({stats.finish_reason or 'stop'})"
        ) + (f"; {PLAIN_COMPLETION_NOTE}" if stats.plain_completion else "")
        self.stats_lines[side] = f"{side}: {line}" if self.compare else line
        # Side by side, each side's numbers on a line of their own: one line cuts the second at 80 columns.
        self.query_one("#chat-stats", Static).update(
            Text("\n".join(self.stats_lines[s] for s in sorted(self.stats_lines)))
        )

    def action_stop(self) -> None:
        if self.generating:
            self.stop_flag.set()
        else:  # out of the message box, so the area keys (1-5) work again
            self.query_one("#pane-a").focus()

    # Modes and history --------------------------------------------------------------

    async def action_compare(self) -> None:
        if self.generating:
            self.notify("Stop the reply first (esc).", severity="warning")
            return
        if any(side.history for side in self.sides.values()):
            question = "Comparing starts a new conversation; this one is cleared. Go on?"
            self.app.push_screen(ConfirmDialog(question, "Clear and switch"), self.switch_compare_if)
            return
        await self.switch_compare()

    async def switch_compare_if(self, yes: bool | None) -> None:
        if yes:
            await self.switch_compare()

    async def switch_compare(self) -> None:
        self.compare = not self.compare
        self.refresh_bindings()
        self.query_one("#chat-model-b").display = self.compare
        self.query_one("#pane-b").display = self.compare
        await self.action_new_chat()

    async def action_new_chat(self) -> None:
        if self.generating:
            self.notify("Stop the reply first (esc).", severity="warning")
            return
        self.end_second_try()
        for name, side in self.sides.items():
            side.history.clear()
            await self.query_one(f"#pane-{name}", VerticalScroll).remove_children()
        self.query_one("#chat-stats", Static).update("")

    def action_save_example(self) -> None:
        if self.generating or not self.sides["a"].history:
            self.notify("Nothing to save yet: ask something first (and let it finish).", severity="warning")
            return
        default = self.last_example_file or Path(self.app.settings.datasets_root).expanduser() / "chat-examples.jsonl"
        self.app.push_screen(SaveExampleDialog(default, self.compare), self.save_example)

    def save_example(self, request: SaveRequest | None) -> None:
        if request is None:
            return
        messages = self.with_system_prompt(self.sides[request.side].history[-2:])
        line = self.appended(request.path, lambda: append_chat_example(request.path, messages))
        if line is not None:
            self.last_example_file = request.path
            self.notify(f"Saved as line {line} of {request.path}.")

    def with_system_prompt(self, turns: list[Turn]) -> list[dict]:
        return as_messages(turns, self.system_prompt())

    def appended(self, path: Path, append: Callable[[], int]) -> int | None:
        """The line `append()` wrote to `path`, or None after a notice saying why it could not."""
        try:
            return append()
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=10)
        except OSError as exc:
            self.notify(f"{path}: could not write ({exc.strerror or exc}).", severity="error", timeout=10)
        return None

    # Preference pairs ---------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """The pair keys show when there are two answers to choose from; Retry in single chat only."""
        if action == "prefer":
            return self.compare or self.second_try
        if action == "try_again":
            return not self.compare
        return True

    def action_try_again(self) -> None:
        """Answer the last prompt again with the same model, below the first answer, to choose between them."""
        first = self.sides["a"].history
        if self.compare or self.generating or len(first) < 2 or first[-1].role != "assistant":
            self.notify("Retry answers the last prompt a second time: ask something first.", severity="warning")
            return
        try:
            sampling, system, target = self.sampling(), self.system_prompt(), self.target("#chat-model-a")
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        if sampling.temperature == 0:
            self.notify("At temperature 0 the second answer is the first one again.", severity="warning")
        if sampling.seed is not None:
            sampling = replace(sampling, seed=sampling.seed + 1)
        self.sides["b"].history = list(first[:-1])
        self.second_try = False
        self.stop_flag.clear()
        self.generating = True
        self.start_reply("b", None, f"{target.label}: answer b (ctrl+l: a better, ctrl+r: b better)", pane_side="a")
        self.generate({"b": target}, {"b": list(self.sides["b"].history)}, sampling, system)
        self.second_try = True
        self.refresh_bindings()

    def end_second_try(self) -> None:
        if self.second_try:
            self.second_try = False
            self.sides["b"].history.clear()
            self.refresh_bindings()

    def action_prefer(self, chosen: str) -> None:
        pair = self.preference_pair(chosen)
        if pair is None:
            return
        if self.pairs_file is None:
            default = Path(self.app.settings.datasets_root).expanduser() / "preference-pairs.jsonl"
            self.app.push_screen(PairsFileDialog(default), lambda path: self.save_pair(path, chosen, pair))
        else:
            self.save_pair(self.pairs_file, chosen, pair)

    def preference_pair(self, chosen: str) -> tuple[list[dict], str, str] | None:
        """(prompt with its history and system prompt, chosen answer, rejected answer), or None with a notice."""
        rejected = "b" if chosen == "a" else "a"
        histories = self.sides[chosen].history, self.sides[rejected].history
        finished = all(len(h) >= 2 and h[-1].role == "assistant" for h in histories)
        if self.generating or not finished or not (self.compare or self.second_try):
            self.notify("A pair needs two finished answers: compare (ctrl+b), or retry (ctrl+t).", severity="warning")
            return None
        if histories[0][-2].content != histories[1][-2].content:
            self.notify("The two answers are to different prompts.", severity="warning")
            return None
        return self.with_system_prompt(histories[0][:-1]), histories[0][-1].content, histories[1][-1].content

    def save_pair(self, path: Path | None, chosen: str, pair: tuple[list[dict], str, str]) -> None:
        if path is None:
            return
        prompt, chosen_text, rejected_text = pair
        if (chosen_text, rejected_text) in self.saved_pairs:
            self.notify("This pair is saved already.", severity="warning")
            return
        line = self.appended(path, lambda: append_preference_pair(path, prompt, chosen_text, rejected_text))
        if line is None:
            return
        self.pairs_file = path
        self.saved_pairs.add((chosen_text, rejected_text))
        if self.second_try and chosen == "b":  # the conversation goes on from the chosen answer
            self.sides["a"].history[-1] = self.sides["b"].history[-1]
        self.notify(f"Pair saved as line {line} of {path} ({chosen} chosen).")


class PairsFileDialog(Dialog):
    heading = "Save preference pairs (prompt, chosen, rejected) to"
    ok_label = "Save"

    def __init__(self, default: Path) -> None:
        super().__init__()
        self.default = default

    def fields(self) -> ComposeResult:
        yield self.row("pairs file", Input(str(self.default), id="pairs-path"))

    def request(self) -> Path:
        return self.ask_before_new_folder(new_path(self.value("pairs-path"), "file"))
