"""Dialogs of the Datasets screen: split, redact (with a preview), documents to JSONL, column mapping,
question-answer pairs from documents (with a preview).

Each dialog only gathers and checks its inputs (redact also previews); the
screen runs the job itself, so closing a dialog never stops a write half way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Input, Select, Static

from lora_tui.core.data.columns import KEYS, check_columns_exist, format_columns, parse_columns
from lora_tui.core.data.documents import CHUNKINGS, DEFAULT_CHUNK_TOKENS, ModelTokens
from lora_tui.core.data.pii import NER_SKIPPED_NOTE, make_redactor, redacted_lines
from lora_tui.core.data.synth import (
    DEFAULT_PAIRS_PER_CHUNK,
    DEFAULT_SYNTH_CHUNK_TOKENS,
    Synthesizer,
    check_outputs,
    document_chunks,
)
from lora_tui.core.errors import UserError
from lora_tui.core.inference.generate import Generator
from lora_tui.core.threads import mlx_worker_thread
from lora_tui.screens.dialogs import Dialog, new_path, number


@dataclass(frozen=True)
class SplitRequest:
    source: Path
    out_dir: Path
    valid_fraction: float
    test_fraction: float
    seed: int


@dataclass(frozen=True)
class RedactRequest:
    source: Path
    out: Path


@dataclass(frozen=True)
class DemoRequest:
    """Write the demo dataset (made-up facts, train/valid/test) into `out`."""

    out: Path


@dataclass(frozen=True)
class DocsRequest:
    sources: list[Path]
    out: Path
    chunking: str
    chunk_tokens: int


class SplitDialog(Dialog):
    heading = "Split into train / valid / test"
    ok_label = "Split"

    def __init__(self, source: Path) -> None:
        super().__init__()
        self.source = source

    def fields(self) -> ComposeResult:
        yield self.row("valid fraction", Input("0.1", id="valid-fraction"))
        yield self.row("test fraction", Input("0", id="test-fraction"))
        yield self.row("seed", Input("0", id="seed"))
        yield self.row("into folder", Input(str(self.source.with_name(f"{self.source.stem}-split")), id="out-dir"))

    def request(self) -> SplitRequest:
        return SplitRequest(
            self.source,
            new_path(self.value("out-dir"), "output folder"),
            number(self.value("valid-fraction"), float, "The valid fraction"),
            number(self.value("test-fraction"), float, "The test fraction"),
            number(self.value("seed"), int, "The seed"),
        )


class RedactDialog(Dialog):
    heading = "Redact personal data"
    ok_label = "Write redacted copy"
    PREVIEW_RECORDS = 200
    PREVIEW_SHOWN = 12

    @dataclass
    class PreviewReady(Message):
        changes: list[tuple[int, str, str]]
        scanned: int
        note: str | None

    def __init__(self, source: Path, spacy_pipeline: str) -> None:
        super().__init__()
        self.source = source
        self.spacy_pipeline = spacy_pipeline

    def fields(self) -> ComposeResult:
        yield self.row(
            "write to", Input(str(self.source.with_name(f"{self.source.stem}.redacted.jsonl")), id="redact-out")
        )
        with VerticalScroll(classes="dialog-preview"):
            yield Static(
                f"Finding what would change in the first {self.PREVIEW_RECORDS} records...", id="redact-preview"
            )

    def on_mount(self) -> None:
        self.preview()

    @work(thread=True, exclusive=True, group="redact-preview", exit_on_error=False)
    def preview(self) -> None:
        from itertools import islice

        try:
            redactor = make_redactor(self.spacy_pipeline)
            rows = list(islice(redacted_lines(self.source, redactor), self.PREVIEW_RECORDS))
        except UserError as exc:
            self.post_message(self.PreviewReady([], 0, str(exc)))
            return
        changes = [row for row in rows if row[1] != row[2]]
        self.post_message(
            self.PreviewReady(changes, len(rows), NER_SKIPPED_NOTE if redactor.skipped_categories else None)
        )

    @on(PreviewReady)
    def show_preview(self, message: PreviewReady) -> None:
        text = Text()
        if message.scanned == 0:
            text.append("The file has no records to redact.\n", style="bold")
        else:
            shown = (
                f"the first {message.scanned}" if message.scanned == self.PREVIEW_RECORDS else f"the {message.scanned}"
            )
            text.append(f"{len(message.changes)} of {shown} records would change.\n", style="bold")
        if message.note:
            text.append(message.note + "\n")
        for line, before, after in message.changes[: self.PREVIEW_SHOWN]:
            text.append(f"\nline {line}\n", style="bold")
            text.append(f"- {before}\n+ {after}\n")
        self.query_one("#redact-preview", Static).update(text)

    def request(self) -> RedactRequest:
        out = new_path(self.value("redact-out"), "output file")
        if out.exists():
            raise UserError(f"{out} already exists; choose another name.")
        return RedactRequest(self.source, out)


class DocsDialog(Dialog):
    heading = "Documents to JSONL (.txt, .md, .pdf, or a folder of them)"
    ok_label = "Convert"

    def __init__(self, source: Path | None, counted_in: str) -> None:
        super().__init__()
        self.source = source
        self.counted_in = counted_in

    def fields(self) -> ComposeResult:
        source = str(self.source) if self.source else ""
        out = str(self.source.with_name(f"{self.source.stem}.jsonl")) if self.source and self.source.is_file() else ""
        yield self.row("documents", Input(source, placeholder="file or folder", id="docs-source"))
        yield self.row(
            "chunking", Select([(c, c) for c in CHUNKINGS], value=CHUNKINGS[0], allow_blank=False, id="docs-chunking")
        )
        yield self.row(f"chunk size ({self.counted_in})", Input(str(DEFAULT_CHUNK_TOKENS), id="docs-size"))
        yield self.row("write to", Input(out, placeholder="new .jsonl file", id="docs-out"))

    def request(self) -> DocsRequest:
        source = new_path(self.value("docs-source"), "documents")
        if not source.exists():
            raise UserError(f"{source}: no such file or folder.")
        out = new_path(self.value("docs-out"), "output file")
        if out.exists():
            raise UserError(f"{out} already exists; choose another name.")
        size = number(self.value("docs-size"), int, "The chunk size")
        if size < 16:
            raise UserError("The chunk size must be at least 16.")
        return DocsRequest([source], out, str(self.query_one("#docs-chunking", Select).value), size)


@dataclass(frozen=True)
class ColumnsChosen:
    """The mapping the user gave for a table (or a JSONL file of other field names)."""

    source: Path
    columns: dict[str, str]


class ColumnsDialog(Dialog):
    """A table's columns with a few of their values, and the mapping onto a record's parts, typed as in --columns."""

    heading = "Map the columns onto a record"
    ok_label = "Use this mapping"
    SHOWN_VALUES = 3
    VALUE_WIDTH = 36

    def __init__(self, source: Path, names: list[str], samples: list[dict], mapping: dict[str, str] | None) -> None:
        super().__init__()
        self.source, self.names, self.samples, self.mapping = source, names, samples, mapping

    def fields(self) -> ComposeResult:
        yield Static(self.columns_text(), id="columns-sample")
        yield self.row(
            "columns",
            Input(format_columns(self.mapping), placeholder="prompt=question,completion=answer", id="columns-map"),
        )
        yield Static(Text(f"parts: {', '.join(KEYS)}", style="dim"), id="columns-parts")

    def columns_text(self) -> Text:
        text = Text()
        text.append(f"{self.source.name}: {len(self.names)} columns\n", style="bold")
        for name in self.names:
            values = [_short(row.get(name), self.VALUE_WIDTH) for row in self.samples[: self.SHOWN_VALUES]]
            text.append(f"{name}", style="bold")
            text.append(f"  {' | '.join(values)}\n")
        return text

    def request(self) -> ColumnsChosen:
        mapping = parse_columns(self.value("columns-map"))
        if mapping is None:
            raise UserError("Give a mapping, e.g. prompt=question,completion=answer.")
        check_columns_exist(mapping, self.names, Path(self.source.name))
        return ColumnsChosen(self.source, mapping)


def _short(value, width: int) -> str:
    shown = " ".join(str(value).split()) if value is not None else "(empty)"
    return shown if len(shown) <= width else shown[: width - 1] + "…"


@dataclass(frozen=True)
class SynthRequest:
    sources: list[Path]
    out: Path
    pairs_per_chunk: int
    model_path: Path


class SynthDialog(Dialog):
    """Question-answer pairs from documents: a preview of the first chunks' pairs, then the whole job."""

    heading = "Question-answer pairs from documents, by the chosen model"
    ok_label = "Write all pairs"
    PREVIEW_CHUNKS = 2

    @dataclass
    class PreviewReady(Message):
        text: Text

    def __init__(self, source: Path | None, model_path: Path | None) -> None:
        super().__init__()
        self.source, self.model_path = source, model_path

    def fields(self) -> ComposeResult:
        source = str(self.source) if self.source else ""
        out = str(self.source.with_name(f"{self.source.stem}.qa.jsonl")) if self.source else ""
        yield self.row("documents", Input(source, placeholder="file or folder", id="synth-source"))
        yield self.row("pairs a chunk", Input(str(DEFAULT_PAIRS_PER_CHUNK), id="synth-pairs"))
        yield self.row("write to", Input(out, placeholder="new .jsonl file", id="synth-out"))
        with VerticalScroll(classes="dialog-preview"):
            yield Static(self.waiting_text(), id="synth-preview")

    def waiting_text(self) -> str:
        if self.model_path is None:
            return "Choose a chat model at the top of the Datasets screen (tokens of ...) to write the pairs."
        return f"Writing pairs for the first {self.PREVIEW_CHUNKS} chunks with {self.model_path.name} ..."

    def on_mount(self) -> None:
        if self.model_path is not None and self.source is not None:
            self.preview(self.source, self.pairs())

    def pairs(self) -> int:
        return number(self.value("synth-pairs"), int, "Pairs a chunk")

    @work(thread=True, exclusive=True, group="synth-preview", exit_on_error=False)
    def preview(self, source: Path, pairs: int) -> None:
        try:
            with mlx_worker_thread():
                generator = Generator(self.model_path)
                synthesizer = Synthesizer(generator, pairs)
                chunks = document_chunks(
                    [source], "paragraphs", DEFAULT_SYNTH_CHUNK_TOKENS, ModelTokens(generator.tokenizer)
                )
                report = synthesizer.run(chunks[: self.PREVIEW_CHUNKS])
        except UserError as exc:
            self.post_message(self.PreviewReady(Text(str(exc))))
            return
        self.post_message(self.PreviewReady(preview_text(report, len(chunks))))

    @on(PreviewReady)
    def show_preview(self, message: PreviewReady) -> None:
        self.query_one("#synth-preview", Static).update(message.text)

    def request(self) -> SynthRequest:
        if self.model_path is None:
            raise UserError("Choose a chat model on the Datasets screen first.")
        source = new_path(self.value("synth-source"), "documents")
        if not source.exists():
            raise UserError(f"{source}: no such file or folder.")
        out = new_path(self.value("synth-out"), "output file")
        check_outputs(out)
        return SynthRequest([source], out, self.pairs(), self.model_path)


def preview_text(report, chunks: int) -> Text:
    text = Text()
    text.append(
        f"{len(report.kept)} of {report.generated} pairs kept from the first {report.chunks_done} of {chunks} chunks "
        f"({report.seconds_per_chunk:.1f} s a chunk; the whole job about {report.seconds_per_chunk * chunks:.0f} s)\n",
        style="bold",
    )
    for pair in report.kept:
        text.append(f"\nQ: {pair.question}\n", style="bold")
        text.append(f"A: {pair.answer}\n")
        text.append(f"   chunk {pair.chunk.number} of {pair.chunk.document.name}, support {pair.support:.0%}\n", "dim")
    return text
