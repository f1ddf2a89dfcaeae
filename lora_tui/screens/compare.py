"""Compare runs: two or more adapters' loss curves on one chart, their parameters and last evaluations side by side."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Label
from textual_plotext import PlotextPlot

from lora_tui.core.adapters.layout import EVENTS, read_metadata
from lora_tui.core.adapters.registry import AdapterInfo
from lora_tui.core.training.events import Step, Validation, read_events
from lora_tui.widgets.app_footer import AppFooter
from lora_tui.widgets.loss_chart import smoothed
from lora_tui.widgets.plot_ticks import whole_ticks
from lora_tui.worker_errors import ReportsWorkerErrors


@dataclass
class Run:
    name: str
    train: list[tuple[int, float]]
    valid: list[tuple[int, float]]
    rows: dict[str, str]  # what the table shows: parameter or score -> value


@dataclass
class RunsLoaded(Message):
    runs: list[Run]


class CompareChart(PlotextPlot):
    """Every run's smoothed train loss (a line) and validation loss (dots), one colour and legend entry each."""

    runs: list[Run] = []

    def show(self, runs: list[Run]) -> None:
        self.runs = runs
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("loss")
        plt.xlabel("step")
        steps = [step for run in runs for step, _ in run.train]
        for run in runs:
            if run.train:
                plt.plot(*zip(*smoothed(run.train), strict=True), label=f"{run.name} train", marker="braille")
            if run.valid:
                plt.scatter(*zip(*run.valid, strict=True), label=f"{run.name} valid", marker="dot")
        if steps:
            plt.xticks(whole_ticks(min(steps), max(steps)))
        self.refresh()


class CompareScreen(ReportsWorkerErrors, Screen):
    BINDINGS = [Binding("escape", "dismiss", "Close", id="compare-close")]

    def __init__(self, adapters: list[AdapterInfo], title: str | None = None) -> None:
        super().__init__()
        self.adapters = adapters
        self.title_text = title or f"Comparing {', '.join(a.name for a in adapters)}"

    def compose(self) -> ComposeResult:
        yield Label(self.title_text, id="compare-title")
        yield CompareChart(id="compare-chart")
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield AppFooter()

    def on_mount(self) -> None:
        self.load_runs()

    @work(thread=True, exclusive=True, group="compare-runs", exit_on_error=False)
    def load_runs(self) -> None:
        self.post_message(RunsLoaded([load_run(info) for info in self.adapters]))

    @on(RunsLoaded)
    def show_runs(self, message: RunsLoaded) -> None:
        self.query_one(CompareChart).show(message.runs)
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_columns("", *(run.name for run in message.runs))
        keys = list(dict.fromkeys(key for run in message.runs for key in run.rows))
        for key in keys:
            values = [run.rows.get(key, "-") for run in message.runs]
            differ = len(set(values)) > 1
            table.add_row(
                Text(key, style="bold" if differ else ""),
                *(Text(value, style="bold reverse" if differ else "") for value in values),
            )


def load_run(info: AdapterInfo) -> Run:
    events = read_events(info.path / EVENTS) if (info.path / EVENTS).is_file() else []
    meta = read_metadata(info.path)
    rows = {key.replace("_", " "): _shown(value) for key, value in meta.get("parameters", {}).items()}
    rows.update(
        {
            "base model": _shown(info.base_model),
            "steps": _shown(info.steps),
            "final train loss": _shown(info.final_train_loss),
            "best val loss": _shown(info.best_val_loss),
        }
    )
    evaluation = meta.get("last_evaluation")
    for side in evaluation["summary"] if evaluation else []:
        for key in ("loss", "contained", "token_f1", "chrf"):
            rows[f"eval {side['label']} {key.replace('_', ' ')}"] = _shown(side.get(key))
    if evaluation:
        rows["eval regressions"] = str(evaluation["regressions"])
    after = meta.get("eval") if isinstance(meta.get("eval"), dict) else {}  # train --eval-after
    for key in ("loss", "contained", "token_f1", "chrf"):
        if key in after:
            rows[f"eval after {key.replace('_', ' ')}"] = _shown(after[key])
    return Run(
        info.name,
        [(e.step, e.train_loss) for e in events if isinstance(e, Step)],
        [(e.step, e.val_loss) for e in events if isinstance(e, Validation)],
        rows,
    )


def _shown(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
