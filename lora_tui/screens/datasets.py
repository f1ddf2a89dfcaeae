"""The Datasets screen: browse, check, count tokens, read records, split, redact, convert documents.

Everything slow (reading every line, loading a tokenizer, spaCy) runs in
thread workers that post results; the handlers here only show them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, DirectoryTree, Input, Label, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from lora_tui.core.data.check import DatasetReport, check_dataset
from lora_tui.core.data.columns import SavedColumns, format_columns
from lora_tui.core.data.demo import write_demo_dataset
from lora_tui.core.data.documents import ModelTokens, documents_to_jsonl
from lora_tui.core.data.masks import mask_summary, part_text
from lora_tui.core.data.pii import NER_SKIPPED_NOTE, make_redactor, redact_file
from lora_tui.core.data.recent import RecentFiles
from lora_tui.core.data.records import (
    ColumnsNeeded,
    ReadState,
    browse_entries,
    dataset_files,
    iter_items,
    looks_like_dataset_folder,
)
from lora_tui.core.data.split import split_dataset
from lora_tui.core.data.synth import DEFAULT_SYNTH_CHUNK_TOKENS, Synthesizer, document_chunks, sources_path, write_pairs
from lora_tui.core.data.tables import sample_rows, table_columns, table_kind
from lora_tui.core.data.tokens import PAIR_PARTS, load_token_counter
from lora_tui.core.errors import UserError
from lora_tui.core.files import free_path
from lora_tui.core.inference.generate import Generator
from lora_tui.core.threads import mlx_worker_thread
from lora_tui.core.units import counted
from lora_tui.messages import DatasetTrainRequested
from lora_tui.screens.dataset_dialogs import (
    ColumnsChosen,
    ColumnsDialog,
    DemoRequest,
    DocsDialog,
    DocsRequest,
    RedactDialog,
    RedactRequest,
    SplitDialog,
    SplitRequest,
    SynthDialog,
    SynthRequest,
)
from lora_tui.widgets.app_footer import AppFooter
from lora_tui.widgets.area_bar import AreaBar
from lora_tui.widgets.model_picker import ModelPicker
from lora_tui.widgets.token_histogram import TokenHistogram
from lora_tui.worker_errors import ReportsWorkerErrors

DEMO_OPTION = "demo-dataset"
SHOWN_SUFFIXES = {".jsonl", ".json", ".txt", ".md", ".pdf", ".parquet", ".arrow", ".csv", ".tsv"}
DOCUMENT_SUFFIXES = {".md", ".pdf"}


RECORD_KEYS = Binding.Group("Record", compact=True)
TAB_KEYS = Binding.Group("Tabs", compact=True)


class DatasetTree(DirectoryTree):
    """Folders and the files this screen can open; hidden entries left out."""

    def filter_paths(self, paths):
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in SHOWN_SUFFIXES)]


@dataclass
class DatasetChecked(Message):
    path: Path
    report: DatasetReport
    entries: list  # core.datasets.Entry
    counter: object | None  # the model's TokenCounter: the record as the model reads it, when one loaded
    note: str | None
    recent: list[Path]


@dataclass
class JobFinished(Message):
    """A split, redaction or conversion ended: `text` says how; `made` is what to open next."""

    text: str
    made: Path | None = None
    failed: bool = False
    request: object = None  # what was asked for (the screen knows a synth job's end by it)


@dataclass
class ColumnsAsked(Message):
    """The file's columns name no format (or the user asked to remap): the mapping dialog opens on them."""

    path: Path
    names: list[str]
    samples: list[dict]
    mapping: dict[str, str] | None


@dataclass
class SynthProgress(Message):
    text: str


@dataclass
class DatasetUnreadable(Message):
    """The file typed or chosen cannot be checked (missing, unreadable, not a dataset): `text` says why."""

    path: Path
    text: str
    noticed: bool = True  # False where a dialog already answers it (the column mapping one)


def _synth_line(report) -> str:
    return (
        f"Writing pairs: chunk {report.chunks_done} of {report.chunks}, {counted(len(report.kept), 'pair')} kept "
        f"({report.seconds_per_chunk:.1f} s a chunk); x stops."
    )


class DatasetsScreen(ReportsWorkerErrors, Screen):
    PURPOSE = """Find a dataset and see if it is ready: its format, every line checked, token counts
    against the model's tokenizer, lint warnings (duplicates, boilerplate, over-long records). Split it, redact
    personal data, turn documents into training text, or send it to Train."""
    AUTO_FOCUS = "#dataset-tree"
    BINDINGS = [
        Binding("o", "type_path", "Open", id="dataset-open", tooltip="type the path of a dataset or folder"),
        Binding("escape", "leave_path", "Leave the box", id="dataset-leave-path"),
        Binding("s", "split", "Split", id="dataset-split"),
        Binding("r", "redact", "Redact", id="dataset-redact"),
        Binding("d", "documents", "Docs", id="dataset-docs", tooltip="turn documents into training data"),
        # Off the footer (80 columns hold no more); the summary line names them where they apply, and ? lists them.
        Binding("g", "synth", "Q&A", id="dataset-synth", tooltip="question-answer pairs from documents", show=False),
        Binding("m", "map_columns", "Columns", id="dataset-columns", tooltip="map the columns", show=False),
        Binding("x", "stop_synth", "Stop", id="dataset-stop-synth", tooltip="stop writing pairs (keeps those made)"),
        Binding("t", "train_on", "Train", id="dataset-train", tooltip="train on this dataset (fills the Train form)"),
        Binding("p", "show_tab('tab-problems')", "Problems", id="tab-problems-key", group=TAB_KEYS),
        Binding("k", "show_tab('tab-tokens')", "Tokens", id="tab-tokens-key", group=TAB_KEYS),
        Binding("v", "show_tab('tab-record')", "Record", id="tab-record-key", group=TAB_KEYS),
        Binding("[", "record(-1)", "Previous", id="record-prev", group=RECORD_KEYS),
        Binding("]", "record(1)", "Next", id="record-next", group=RECORD_KEYS),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.path: Path | None = None
        self.entries: list = []
        self.entry_index = 0
        self.record_counter = None  # the checked dataset's TokenCounter: what each record trains
        self.counters: dict[str, object] = {}  # model path -> TokenCounter, loaded once each
        self.problem_targets: dict[str, tuple[str | None, int]] = {}
        self.synth_stop: threading.Event | None = None  # set while pairs are being written

    def compose(self) -> ComposeResult:
        root = self.datasets_root()
        yield AreaBar("datasets")
        with Horizontal(id="datasets-body"):
            with Vertical(id="dataset-browser"):
                # Tab into the box must not select its text: the next key would replace the path.
                yield Input(
                    placeholder="path to open, then enter", id="dataset-path", compact=True, select_on_focus=False
                )
                yield Label("recent", classes="section-label", id="recent-label")
                yield OptionList(id="recent-list")
                yield DatasetTree(root, id="dataset-tree")
            with Vertical(id="dataset-main"):
                with Horizontal(id="dataset-model-row"):
                    yield Label("tokens of ", classes="row-label")
                    yield ModelPicker(id="dataset-model", prompt="a model, for token counts", compact=True)
                yield Static(
                    "Choose a dataset on the left (a .jsonl or .txt file, or a folder with train.jsonl).",
                    id="dataset-summary",
                )
                with TabbedContent(id="dataset-tabs"):
                    with TabPane("Problems", id="tab-problems"):
                        yield OptionList(id="problem-list")
                    with TabPane("Tokens", id="tab-tokens"), Horizontal():
                        yield DataTable(id="token-table", cursor_type="none", zebra_stripes=True)
                        yield TokenHistogram(id="token-histogram")
                    with TabPane("Record", id="tab-record"):
                        yield Static("", id="record-position")
                        with VerticalScroll(id="record-scroll"):
                            yield Static("", id="record-view")
        yield AppFooter()

    def datasets_root(self) -> Path:
        """The settings' datasets_root, or home, or here: the first that is a folder."""
        candidates = (Path(self.app.settings.datasets_root).expanduser(), Path.home(), Path.cwd())
        return next(p for p in candidates if p.is_dir())

    def on_mount(self) -> None:
        self.show_recent(RecentFiles(self.app.locations.recent_datasets_file).load())
        self.query_one("#token-table", DataTable).add_columns("measure", "tokens")

    # Opening ------------------------------------------------------------------------

    @on(DirectoryTree.FileSelected)
    def file_chosen(self, event: DirectoryTree.FileSelected) -> None:
        self.open(event.path)

    @on(DirectoryTree.DirectorySelected)
    def folder_chosen(self, event: DirectoryTree.DirectorySelected) -> None:
        if looks_like_dataset_folder(event.path):
            self.open(event.path)

    @on(OptionList.OptionSelected, "#recent-list")
    def recent_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == DEMO_OPTION:
            self.job(DemoRequest(free_path(self.datasets_root() / "lora-tui-demo")), None)
            return
        self.open(Path(event.option.id))

    def action_type_path(self) -> None:
        self.query_one("#dataset-path", Input).focus()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "leave_path":  # shown (and needed) only while the path box has the keys
            boxes = self.query("#dataset-path")
            return bool(boxes) and boxes.first().has_focus
        if action == "stop_synth":
            return self.synth_stop is not None
        return True

    def action_leave_path(self) -> None:
        if self.query_one("#dataset-path", Input).has_focus:
            self.query_one(DatasetTree).focus()

    def on_descendant_focus(self, event) -> None:
        self.refresh_bindings()  # the footer's keys differ in and out of the path box

    def on_descendant_blur(self, event) -> None:
        self.refresh_bindings()

    @on(Input.Submitted, "#dataset-path")
    def path_typed(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if path.is_dir() and not looks_like_dataset_folder(path):
            self.query_one(DatasetTree).path = path
            self.query_one(DatasetTree).focus()
            return
        self.open(path)
        self.query_one("#problem-list").focus()  # out of the box, so the screen's keys work again

    @on(ModelPicker.Changed, "#dataset-model")
    def model_changed(self) -> None:
        if self.path is not None:
            self.open(self.path)

    def open(self, path: Path) -> None:
        path = Path(path).expanduser()
        self.path = path
        if path.suffix.lower() in DOCUMENT_SUFFIXES:
            self.show_summary(
                f"{path.name} is a document: press d to turn it into training text, g for question-answer pairs."
            )
            return
        self.show_summary(f"Checking {path} ...")
        self.check(path, self.query_one(ModelPicker).chosen_path())

    @work(thread=True, exclusive=True, group="dataset-check", exit_on_error=False)
    def check(self, path: Path, model_path: str | None) -> None:
        counter, note = self.token_counter(model_path)
        columns = self.saved_columns().get(path)
        try:
            report = check_dataset(path, counter, columns=columns)
            entries = browse_entries(path, columns)
            recent = RecentFiles(self.app.locations.recent_datasets_file).add(path)
        except ColumnsNeeded as exc:
            self.post_message(ColumnsAsked(path, exc.names, self.samples(path), exc.proposal))
            self.post_message(DatasetUnreadable(path, str(exc), noticed=False))
            return
        except UserError as exc:
            self.post_message(DatasetUnreadable(path, str(exc)))
            return
        except OSError as exc:
            self.post_message(DatasetUnreadable(path, f"{path}: cannot read it ({exc.strerror or exc})."))
            return
        self.post_message(DatasetChecked(path, report, entries, counter, note, recent))

    def saved_columns(self) -> SavedColumns:
        return SavedColumns(self.app.locations.column_maps_file)

    def samples(self, path: Path) -> list[dict]:
        """A few rows of the dataset's first split, as they are stored (for the mapping dialog)."""
        first = dataset_files(path)["train"]
        if table_kind(first):
            return [row.values for row in sample_rows(first, ColumnsDialog.SHOWN_VALUES)]
        state = ReadState(first)
        return [item.value for item in islice(iter_items(first, state), ColumnsDialog.SHOWN_VALUES)]

    @on(ColumnsAsked)
    def ask_for_columns(self, message: ColumnsAsked) -> None:
        if message.path == self.path:
            self.app.push_screen(
                ColumnsDialog(message.path, message.names, message.samples, message.mapping), self.columns_chosen
            )

    def columns_chosen(self, chosen: ColumnsChosen | None) -> None:
        if chosen is None:
            return
        self.saved_columns().put(chosen.source, chosen.columns)
        self.notify(f"Reading {chosen.source.name} through {format_columns(chosen.columns)} from now on.")
        self.open(chosen.source)

    def action_map_columns(self) -> None:
        if self.path is None or self.path.suffix.lower() in DOCUMENT_SUFFIXES:
            self.notify("Open a dataset first.", severity="warning")
            return
        self.load_columns(self.path)

    @work(thread=True, exclusive=True, group="dataset-columns", exit_on_error=False)
    def load_columns(self, path: Path) -> None:
        try:
            first = dataset_files(path)["train"]
            samples = self.samples(path)
            names = table_columns(first) if table_kind(first) else sorted({k for row in samples for k in row})
        except UserError as exc:
            self.post_message(DatasetUnreadable(path, str(exc)))
            return
        self.post_message(ColumnsAsked(path, names, samples, self.saved_columns().get(path)))

    def token_counter(self, model_path: str | None):
        """The chosen model's token counter (cached), or None and why not."""
        if model_path is None:
            return None, "Choose a model above for token counts."
        if model_path not in self.counters:
            try:
                self.counters[model_path] = load_token_counter(Path(model_path))
            except Exception as exc:  # any tokenizer failure: report it, check the data anyway
                return None, f"The tokenizer of {Path(model_path).name} failed to load ({exc}); no token counts."
        return self.counters[model_path], None

    # Showing ------------------------------------------------------------------------

    def show_summary(self, text: str) -> None:
        self.query_one("#dataset-summary", Static).update(Text(text))

    def show_recent(self, paths: list[Path]) -> None:
        """Recent files; with none yet, an offer to write the demo dataset (a first run in minutes)."""
        recent = self.query_one("#recent-list", OptionList)
        recent.clear_options()
        if paths:
            recent.add_options([Option(Text(p.name), id=str(p)) for p in paths])
        else:
            recent.add_option(Option(Text("make a demo dataset (facts to learn)"), id=DEMO_OPTION))
        recent.highlighted = 0  # Enter works as soon as the list has focus, with no arrow key first
        self.query_one("#recent-label", Label).update("recent" if paths else "new here?")

    @on(DatasetUnreadable)
    def forget_dataset(self, message: DatasetUnreadable) -> None:
        """Nothing of the file shown before stays on screen, and `t` has no dataset to send."""
        if message.path != self.path:
            return
        self.path = None
        self.show_summary(message.text)
        if message.noticed:
            self.notify(message.text, severity="error", timeout=8)
        problems = self.query_one("#problem-list", OptionList)
        problems.clear_options()
        problems.add_option(Option("No dataset open.", disabled=True))
        self.show_tokens(None)
        self.entries, self.entry_index = [], 0
        self.show_entry()

    @on(DatasetChecked)
    def show_report(self, message: DatasetChecked) -> None:
        report = message.report
        if message.path != self.path:
            return  # another file was chosen while this one was being read
        self.show_recent(message.recent)
        verdict = "ready to train" if report.ok else f"{counted(report.error_count, 'error')}: fix them before training"
        remap = "; m maps its columns" if report.columns else ""
        lines = [report.headline(full_path=False), f"{verdict}; {counted(len(report.warnings), 'warning')}{remap}"]
        if message.note:
            lines.append(message.note)
        self.show_summary("\n".join(lines))
        self.show_problems(report)
        self.show_tokens(report.tokens)
        self.entries, self.record_counter, self.entry_index = message.entries, message.counter, 0
        self.show_entry()

    def show_problems(self, report: DatasetReport) -> None:
        """Errors, then warnings; each option's id is its (file, line) in `problem_targets`."""
        rows = report.problems()
        self.problem_targets = {f"problem-{i}": (file, line) for i, (_, file, line) in enumerate(rows)}
        options = [Option(Text(label), id=f"problem-{i}") for i, (label, _, _) in enumerate(rows)]
        if report.errors_not_listed():
            options.insert(len(report.errors), Option(report.errors_not_listed(), disabled=True))
        problems = self.query_one("#problem-list", OptionList)
        problems.clear_options()
        problems.add_options(options or [Option("No errors, no warnings.", disabled=True)])

    def show_tokens(self, stats) -> None:
        table = self.query_one("#token-table", DataTable)
        table.clear()
        if stats is not None:
            values = stats.to_json()
            for key in ("total", "min", "median", "p75", "p95", "max", "mean", "over_limit"):
                value = values[key]
                table.add_row(key.replace("_", " "), f"{value:,.0f}" if key != "mean" else f"{value:,.1f}")
            for part in [part for part in PAIR_PARTS if part in values]:  # preference pairs: each side on its own
                table.add_row(f"{part} median / max", f"{values[part]['median']:,.0f} / {values[part]['max']:,}")
            table.add_row("counted by", values["tokenizer"])
            table.add_row("max seq length", str(values["max_seq_length"]))
        self.query_one(TokenHistogram).show_stats(stats)

    def show_entry(self) -> None:
        position = self.query_one("#record-position", Static)
        view = self.query_one("#record-view", Static)
        if not self.entries:
            position.update("No records.")
            view.update("")
            return
        entry = self.entries[self.entry_index]
        position.update(
            Text(f"{entry.file} {entry.where}  ({self.entry_index + 1} of {len(self.entries)}; [ and ] to move)")
        )
        view.update(self.entry_text(entry))

    def entry_text(self, entry) -> Text:
        text = Text()
        if entry.record is None:
            text.append(f"error: {entry.problem}\n\n", style="bold reverse")
            text.append(entry.raw)
            return text
        record = entry.record
        if record.is_preference:
            for message in record.prompt_messages:
                text.append(f"{message['role']}\n", style="bold underline")
                text.append(message["content"] + "\n\n")
            for side, answer in (("chosen", record.response), ("rejected", record.rejected)):
                text.append(f"assistant ({side})\n", style="bold underline")
                text.append(answer + "\n\n")
        elif record.is_chat:
            for message in record.messages:
                text.append(f"{message['role']}\n", style="bold underline")
                text.append(message["content"] + "\n\n")
        else:
            text.append(record.text + "\n\n")
        if self.record_counter is not None and not record.is_prompt:
            text.append_text(self.masked_text(record))
        return text

    def masked_text(self, record) -> Text:
        """The record as the model reads it: each part with its tokens, trained text plain, masked text dim."""
        text = Text()
        try:
            masked = self.record_counter.mask(record)
        except UserError as problem:
            return Text(f"as the model reads it: {problem}\n", style="bold")
        text.append(f"as the model reads it: {mask_summary(masked)}\n", style="bold underline")
        for part in masked.parts:
            state = "trained" if part.trained else "masked"
            text.append(f"{part.label} · {counted(part.length, 'token')} · {state}\n", style="bold")
            text.append(part_text(self.record_counter.hf, masked, part) + "\n", style="" if part.trained else "dim")
        return text

    @on(OptionList.OptionSelected, "#problem-list")
    def jump_to_problem(self, event: OptionList.OptionSelected) -> None:
        file, line = self.problem_targets.get(event.option.id, (None, None))
        matches = [i for i, e in enumerate(self.entries) if e.line == line and file in (None, e.file)]
        if matches:
            self.entry_index = matches[0]
            self.show_entry()
            self.query_one(TabbedContent).active = "tab-record"

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_record(self, step: int) -> None:
        if self.entries:
            self.entry_index = (self.entry_index + step) % len(self.entries)
            self.show_entry()
            self.query_one(TabbedContent).active = "tab-record"

    # Jobs ---------------------------------------------------------------------------

    def dataset_file(self) -> Path | None:
        if self.path is None or not self.path.is_file() or self.path.suffix.lower() in DOCUMENT_SUFFIXES:
            self.notify("Open a dataset file first.", severity="warning")
            return None
        return self.path

    def action_train_on(self) -> None:
        if self.path is None or self.path.suffix.lower() in DOCUMENT_SUFFIXES:
            self.notify("Open a dataset first.", severity="warning")
            return
        self.post_message(DatasetTrainRequested(self.path))

    def action_split(self) -> None:
        if (source := self.dataset_file()) is not None:
            self.app.push_screen(SplitDialog(source), self.run_job)

    def action_redact(self) -> None:
        if (source := self.dataset_file()) is not None:
            self.app.push_screen(RedactDialog(source, self.app.settings.spacy_pipeline), self.run_job)

    def action_documents(self) -> None:
        chosen = self.path or self.query_one(DatasetTree).cursor_node.data.path
        counted_in = "tokens" if self.query_one(ModelPicker).chosen_path() else "words"
        self.app.push_screen(DocsDialog(chosen, counted_in), self.run_job)

    def action_synth(self) -> None:
        if self.synth_stop is not None:
            self.notify("Pairs are being written already; x stops them.", severity="warning")
            return
        node = self.query_one(DatasetTree).cursor_node
        chosen = self.path or (node.data.path if node is not None else None)
        model = self.query_one(ModelPicker).chosen_path()
        self.app.push_screen(SynthDialog(chosen, Path(model) if model else None), self.run_job)

    def action_stop_synth(self) -> None:
        if self.synth_stop is not None:
            self.synth_stop.set()
            self.show_summary("Stopping after this batch; the pairs made so far are kept ...")

    def run_job(self, request) -> None:
        if isinstance(request, SynthRequest):
            self.synth_stop = threading.Event()  # x sets it; cleared when the job's JobFinished arrives
            self.refresh_bindings()
        if request is not None:
            self.job(request, self.query_one(ModelPicker).chosen_path())

    @work(thread=True, group="dataset-jobs", exit_on_error=False)
    def job(self, request, model_path: str | None) -> None:
        try:
            finished = self.carry_out(request, model_path)
        except UserError as exc:
            finished = JobFinished(str(exc), failed=True)
        except OSError as exc:
            finished = JobFinished(f"Could not write: {exc}", failed=True)
        finished.request = request
        self.post_message(finished)

    def carry_out(self, request, model_path: str | None) -> JobFinished:
        if isinstance(request, SynthRequest):
            return self.write_pairs(request, self.synth_stop)
        if isinstance(request, DemoRequest):
            counts = write_demo_dataset(request.out)
            made = ", ".join(f"{name} {count}" for name, count in counts.items())
            return JobFinished(
                f"Wrote the demo dataset to {request.out} ({made} records); t trains on it.", request.out
            )
        if isinstance(request, SplitRequest):
            counts = split_dataset(
                request.source, request.out_dir, request.valid_fraction, request.test_fraction, request.seed
            )
            made = ", ".join(f"{name} {count}" for name, count in counts.items())
            return JobFinished(f"Split into {request.out_dir}: {made} records.", request.out_dir)
        if isinstance(request, RedactRequest):
            result = redact_file(request.source, request.out, make_redactor(self.app.settings.spacy_pipeline))
            counts = ", ".join(f"{c} {n}" for c, n in result.counts.items()) or "nothing found"
            note = f" {NER_SKIPPED_NOTE}" if result.skipped_categories else ""
            return JobFinished(f"Wrote {request.out} ({result.records} records; {counts}).{note}", request.out)
        assert isinstance(request, DocsRequest)
        counter, _ = self.token_counter(model_path)
        summary = documents_to_jsonl(
            request.sources,
            request.out,
            request.chunking,
            request.chunk_tokens,
            ModelTokens(counter.hf) if counter else None,
        )
        return JobFinished(
            f"Wrote {request.out}: {summary['records']} records from {summary['documents']} documents "
            f"(chunks counted in {summary['unit']}).",
            request.out,
        )

    def write_pairs(self, request: SynthRequest, stop: threading.Event) -> JobFinished:
        """The whole synth job, stoppable between batches with x; what was made is written either way."""
        with mlx_worker_thread():
            generator = Generator(request.model_path)
            synthesizer = Synthesizer(generator, request.pairs_per_chunk)
            chunks = document_chunks(
                request.sources, "paragraphs", DEFAULT_SYNTH_CHUNK_TOKENS, ModelTokens(generator.tokenizer)
            )
            report = synthesizer.run(chunks, stop, lambda r: self.post_message(SynthProgress(_synth_line(r))))
        write_pairs(request.out, report.kept)
        how = f"stopped after {report.chunks_done} of {report.chunks} chunks" if report.cancelled else "done"
        return JobFinished(
            f"Wrote {request.out}: {len(report.kept)} of {report.generated} pairs kept ({how}); sources in "
            f"{sources_path(request.out).name}.",
            request.out,
        )

    @on(SynthProgress)
    def synth_progress(self, message: SynthProgress) -> None:
        self.show_summary(message.text)

    @on(JobFinished)
    def job_finished(self, message: JobFinished) -> None:
        if isinstance(message.request, SynthRequest):
            self.synth_stop = None
            self.refresh_bindings()
        if message.failed:
            self.show_summary(message.text)
            self.notify(message.text, severity="error", timeout=10)
            return
        self.notify(message.text, timeout=8)
        self.query_one(DatasetTree).reload()
        if message.made is not None:
            self.open(message.made)
