"""The Eval view: an adapter against its base on held-out records, measured in a worker.

While it runs: a progress bar, Esc stops after the current batch. Then the summary (base
and adapter, every score), and a table of records that filters to those the adapter got
wrong or the regressions; the highlighted record's reference and both answers are shown
side by side below.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Label, ProgressBar, Static

from lora_tui.core.adapters.layout import read_metadata
from lora_tui.core.adapters.lock import AdapterBusy
from lora_tui.core.adapters.registry import AdapterInfo, adapter_base_path
from lora_tui.core.errors import UserError
from lora_tui.core.evaluation.report import describe_rewards, save_evaluation
from lora_tui.core.evaluation.run import eval_records, evaluate, held_out_data
from lora_tui.core.threads import mlx_worker_thread
from lora_tui.widgets.app_footer import AppFooter
from lora_tui.worker_errors import ReportsWorkerErrors

FILTERS = {
    "all": ("all records", lambda row: True),
    "wrong": (
        "the adapter wrong",
        lambda row: row["adapter"]["scores"] is not None and not row["adapter"]["scores"]["contained"],
    ),
    "regressions": ("regressions", lambda row: row["regression"]),
}
COLUMNS = ("line", "prompt", "reference", "base", "adapter", "contained b/a", "F1 b/a")


@dataclass
class EvalProgress(Message):
    done: int
    total: int


@dataclass
class EvalPhase(Message):
    text: str


@dataclass
class EvalFinished(Message):
    document: dict | None
    note: str  # where it was saved, what stopped it, or what went wrong
    failed: bool = False


class EvalScreen(ReportsWorkerErrors, Screen):
    BINDINGS = [
        Binding("escape", "stop_or_close", "Stop / close", id="eval-close"),
        Binding("w", "filter('wrong')", "Adapter wrong", id="eval-wrong"),
        Binding("g", "filter('regressions')", "Regressions", id="eval-regressions"),
        Binding("a", "filter('all')", "All", id="eval-all"),
    ]

    def __init__(self, adapter: AdapterInfo, max_tokens: int = 64, batch_size: int = 16) -> None:
        super().__init__()
        self.adapter, self.max_tokens, self.batch_size = adapter, max_tokens, batch_size
        self.stop_flag = threading.Event()
        self.running = True
        self.document: dict | None = None
        self.filter_name = "all"

    def compose(self) -> ComposeResult:
        yield Label(f"Evaluating {self.adapter.name} against its base", id="eval-title")
        with Horizontal(id="eval-progress-row"):
            yield ProgressBar(id="eval-progress", show_eta=False)
            yield Static("starting", id="eval-phase")
        yield Static("", id="eval-summary")
        yield DataTable(id="eval-table", cursor_type="row", zebra_stripes=True)
        with Vertical(id="eval-record"):
            yield Static("", id="eval-reference")
            with Horizontal():
                yield Static("", id="eval-base", classes="eval-answer")
                yield Static("", id="eval-adapter", classes="eval-answer")
        yield AppFooter()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.run_evaluation()

    @work(thread=True, exclusive=True, group="adapter-eval", exit_on_error=False)
    def run_evaluation(self) -> None:
        with mlx_worker_thread():
            try:
                self.post_message(self.measure())
            except UserError as exc:
                self.post_message(EvalFinished(None, str(exc), failed=True))

    def measure(self) -> EvalFinished:
        app = self.app
        base = adapter_base_path(self.adapter, app.locations.models_dir, app.settings.extra_model_dirs())
        data_file, records = eval_records(held_out_data(self.adapter))
        parameters = read_metadata(self.adapter.path).get("parameters", {})
        evaluation = evaluate(
            base,
            records,
            [("base", None), ("adapter", self.adapter.path)],
            str(data_file),
            self.max_tokens,
            self.batch_size,
            parameters.get("max_seq_length", 2048),
            parameters.get("mask_prompt") is not False,
            self.stop_flag,
            lambda done, total: self.post_message(EvalProgress(done, total)),
            beta=parameters.get("beta", 0.1),
            phase=lambda text: self.post_message(EvalPhase(text)),
        )
        if self.stop_flag.is_set() and len(evaluation.sides) < 2:  # base and adapter are compared, or nothing
            return EvalFinished(None, "Stopped before both models were measured: nothing to compare.")
        document = evaluation.to_json()
        if self.stop_flag.is_set():
            return EvalFinished(document, "Stopped: what was measured so far (not saved).")
        try:
            return EvalFinished(document, f"Saved {save_evaluation(self.adapter.path, document)}.")
        except AdapterBusy as busy:
            return EvalFinished(document, f"Not saved: {busy}")

    @on(EvalProgress)
    def show_progress(self, message: EvalProgress) -> None:
        self.query_one(ProgressBar).update(total=message.total, progress=message.done)

    @on(EvalPhase)
    def show_phase(self, message: EvalPhase) -> None:
        if self.is_mounted and not self.stop_flag.is_set():  # once stopping, that is what it is doing
            self.query_one("#eval-phase", Static).update(message.text)

    @on(EvalFinished)
    def show_result(self, message: EvalFinished) -> None:
        self.running = False
        bar = self.query_one(ProgressBar)  # a still bar from now on: as far as it got, or full
        bar.update(total=bar.total or 1, progress=bar.progress if self.stop_flag.is_set() else bar.total or 1)
        self.query_one("#eval-phase", Static).update("stopped" if self.stop_flag.is_set() else "done")
        self.query_one("#eval-title", Label).update(f"{self.adapter.name} against its base")
        if message.failed or message.document is None:
            self.query_one("#eval-summary", Static).update(Text(message.note))
            if message.failed:
                self.notify(message.note, severity="error", timeout=10)
            return
        self.document = message.document
        self.query_one("#eval-summary", Static).update(
            Text("\n".join([*summary_lines(message.document), message.note]))
        )
        self.fill_table()

    def fill_table(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        if self.document is None:
            return
        _, keep = FILTERS[self.filter_name]
        for index, row in enumerate(self.document["records"]):
            if row["reference"] is not None and row["adapter"]["answer"] is not None and keep(row):
                table.add_row(*table_cells(row), key=str(index))
        self.query_one("#eval-title", Label).update(
            f"{self.adapter.name} against its base: {FILTERS[self.filter_name][0]} ({table.row_count})"
        )

    @on(DataTable.RowHighlighted, "#eval-table")
    def show_record(self, event: DataTable.RowHighlighted) -> None:
        row = self.document["records"][int(event.row_key.value)]
        self.query_one("#eval-reference", Static).update(
            Text(f"{row.get('prompt', '')}\nreference: {row['reference']}")
        )
        self.query_one("#eval-base", Static).update(Text(f"base\n{row['base']['answer']}"))
        self.query_one("#eval-adapter", Static).update(Text(f"adapter\n{row['adapter']['answer']}"))

    def action_filter(self, name: str) -> None:
        self.filter_name = name
        self.fill_table()

    def action_stop_or_close(self) -> None:
        if self.running:
            self.stop_flag.set()
            self.query_one("#eval-phase", Static).update("stopping after this batch ...")
        else:
            self.dismiss()


def summary_lines(document: dict) -> list[str]:
    lines = ["model     loss    ppl      exact  contained  F1    chrF"]
    for side in document["summary"]:
        cells = [
            _shown(side, key, pattern, width)
            for key, pattern, width in (
                ("loss", "{:.4f}", 7),
                ("perplexity", "{:.1f}", 8),
                ("exact", "{:.0%}", 6),
                ("contained", "{:.0%}", 10),
                ("token_f1", "{:.2f}", 5),
                ("chrf", "{:.1f}", 0),
            )
        ]
        lines.append(f"{side['label']:<9} " + " ".join(cells))
    lines.append(f"regressions (the base right, the adapter not): {document['regressions']}")
    if document.get("preference"):
        lines.append(describe_rewards(document["preference"]))
    return lines


def _shown(side: dict, key: str, pattern: str, width: int) -> str:
    return (pattern.format(side[key]) if side.get(key) is not None else "-").ljust(width)


def table_cells(row: dict) -> tuple:
    def short(text: str | None) -> str:
        text = (text or "").replace("\n", " ")
        return text if len(text) <= 40 else text[:39] + "…"

    base, adapter = row["base"]["scores"], row["adapter"]["scores"]
    return (
        str(row["line"]),
        short(row.get("prompt")),
        short(row["reference"]),
        short(row["base"]["answer"]),
        short(row["adapter"]["answer"]),
        f"{'yes' if base['contained'] else 'no'}/{'yes' if adapter['contained'] else 'no'}",
        f"{base['token_f1']:.2f}/{adapter['token_f1']:.2f}",
    )
