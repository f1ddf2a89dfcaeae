"""Modal forms: a base with OK / Cancel and a problem line, and the small dialogs every screen uses."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from lora_tui.core.errors import UserError
from lora_tui.widgets.app_footer import AppFooter
from lora_tui.worker_errors import ReportsWorkerErrors


def number(text: str, kind, what: str):
    try:
        return kind(text.strip())
    except ValueError:
        raise UserError(f"{what} must be a {'whole ' if kind is int else ''}number, not {text.strip()!r}.") from None


def new_path(text: str, what: str) -> Path:
    if not text.strip():
        raise UserError(f"Give the {what}.")
    return Path(text.strip()).expanduser()


class DialogBody(VerticalScroll, can_focus=False):
    """The fields of a dialog: scrolled to whichever field has focus, never a Tab stop of its own."""


class Dialog(ReportsWorkerErrors, ModalScreen):
    """A form in a box: labelled inputs, a problem line, and OK / Cancel.

    The fields scroll inside the box, so the problem line and the buttons stay in sight
    at 80x24 however many fields there are; the footer shows the dialog's own keys."""

    DEFAULT_CLASSES = "dialog-screen"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="close-dialog")]
    heading = ""
    ok_label = "OK"

    def fields(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        # Enter in a text box is the dialog's own action, labelled as its button; on a button or a list it
        # stays theirs (check_action), so Enter on Cancel still cancels.
        self._bindings.bind("enter", "submit", self.ok_label, priority=True)
        with Vertical(classes="dialog"):
            yield Static(self.heading, classes="dialog-title")
            with DialogBody(classes="dialog-body"):
                yield from self.fields()
            yield Static("", classes="dialog-problem")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.ok_label, variant="primary", id="ok")
                yield Button("Cancel", id="cancel")
        yield AppFooter()

    def ask_before_new_folder(self, path: Path) -> Path:
        """A file in a folder that does not exist yet: the first OK says so, a second OK creates it."""
        folder = path.parent
        if not folder.is_dir() and folder != getattr(self, "_folder_to_create", None):
            self._folder_to_create = folder
            raise UserError(f"The folder {folder} does not exist: {self.ok_label} again creates it.")
        return path

    def row(self, label: str, widget) -> Horizontal:
        return Horizontal(Label(label, classes="dialog-label"), widget, classes="dialog-row")

    def value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value

    def request(self):
        raise NotImplementedError

    def show_problem(self, text: str) -> None:
        self.query_one(".dialog-problem", Static).update(Text(text))

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "submit":
            return isinstance(self.focused, Input)
        return True

    def action_submit(self) -> None:
        self.submit()

    @on(Button.Pressed, "#ok")
    @on(Input.Submitted)
    def submit(self) -> None:
        try:
            self.dismiss(self.request())
        except UserError as exc:
            self.show_problem(str(exc))


class QuitDialog(Dialog):
    """Quitting while a run trains: leave it running (it goes on without the app), stop it (saved), or stay."""

    ok_label = "Leave it running"

    def __init__(self, name: str, can_leave: bool = True) -> None:
        super().__init__()
        self.heading = (
            f"{name} is training. Leave it running when the app quits (it goes on in the background and the "
            "next app follows it), or stop it after this step (saved; Resume goes on)?"
        )
        self.can_leave = can_leave

    def on_mount(self) -> None:
        buttons = self.query_one(".dialog-buttons")
        buttons.mount(Button("Stop and quit", id="stop-run"), before=self.query_one("#cancel", Button))
        self.query_one("#ok", Button).display = self.can_leave
        self.query_one("#cancel", Button).focus()

    def request(self) -> str:
        return "leave"

    @on(Button.Pressed, "#stop-run")
    def stop_run(self) -> None:
        self.dismiss("stop")


class TextDialog(Dialog):
    """One line of text, checked by `check` (which raises UserError) before the dialog closes."""

    def __init__(
        self, heading: str, label: str, value: str = "", check=lambda text: text, ok_label: str = "OK"
    ) -> None:
        super().__init__()
        self.heading, self.label, self.initial, self.check, self.ok_label = heading, label, value, check, ok_label

    def fields(self) -> ComposeResult:
        yield self.row(self.label, Input(self.initial, id="dialog-text"))

    def request(self):
        return self.check(self.value("dialog-text").strip())


class ConfirmDialog(Dialog):
    """A yes/no question; dismisses with True, or None when cancelled."""

    def __init__(self, question: str, ok_label: str = "Yes") -> None:
        super().__init__()
        self.heading, self.ok_label = question, ok_label

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # the safe answer is the default

    def request(self) -> bool:
        return True


class FitDialog(Dialog):
    """A run that would not fit in memory: what it needs, and one button (and number key) per change that
    makes it fit; dismisses with the chosen change's parameter values, or None."""

    def __init__(self, problem: str, fixes: list) -> None:
        super().__init__()
        self.heading, self.fixes = problem, fixes
        for number in range(1, len(fixes) + 1):
            self._bindings.bind(str(number), f"apply({number - 1})", f"Fix {number}")

    def fields(self) -> ComposeResult:
        yield Static("Apply one of these to the form, then start again:", classes="dialog-preview")
        for number, fix in enumerate(self.fixes, start=1):
            yield Button(f"{number}  {_setting_words(fix.values)}", id=f"fix-{number - 1}", classes="fit-fix")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).display = False
        self.query_one("#cancel", Button).label = "Back to the form"
        (self.query_one("#fix-0", Button) if self.fixes else self.query_one("#cancel", Button)).focus()

    @on(Button.Pressed, ".fit-fix")
    def pressed(self, event: Button.Pressed) -> None:
        self.action_apply(int(event.button.id.removeprefix("fix-")))

    def action_apply(self, index: int) -> None:
        self.dismiss(self.fixes[index].values)

    def request(self):
        return None


def _setting_words(values: dict) -> str:
    """{"batch_size": 2, "grad_checkpoint": True} -> "batch size 2, grad checkpoint on"."""
    return ", ".join(f"{name.replace('_', ' ')} {'on' if value is True else value}" for name, value in values.items())
