"""`data synth`: question-answer pairs written by a local model from documents, each traceable to its chunk.

Documents are chunked as `from-docs` chunks them. For each chunk a chat model (any local one,
typically larger than the model being trained) is asked for N questions that the passage
answers, and their answers, in a fixed "Q: ... / A: ..." form; chunks go through it in batches
(mlx-lm's batched generation, greedy, so a run is reproducible).

A pair is kept only when it passes checks that can be explained:
- supported: most of the answer's content words (at least SUPPORT_THRESHOLD of them) occur in
  the chunk, so the answer is the passage's, not the model's own knowledge or invention;
- not a near-duplicate of a kept question (case, punctuation and spacing folded);
- lint: not empty or trivially short, no assistant boilerplate, not the question repeated.
Kept pairs become {"messages": [user, assistant]} records; a side file (FILE.sources.jsonl)
gives each record's source: the document, the chunk's number in it and its character offset.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lora_tui.core.data.documents import CHUNKINGS, Chunker, find_documents, read_document
from lora_tui.core.data.lint import BOILERPLATE, normalised
from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_write_text

DEFAULT_PAIRS_PER_CHUNK = 3
DEFAULT_SYNTH_CHUNK_TOKENS = 320
SUPPORT_THRESHOLD = 0.6
TOKENS_PER_PAIR = 80
MIN_ANSWER_WORDS = 2
# Words that say nothing about where an answer came from.
STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        """a an and are as at be by for from has have he her his i in is it its of on or she that the their them
        they this to was were which who will with you your what when where why how not no yes do does did can""",
    )
)
# "Q: ...", "1. Question: ...", "**A:** ..." and the like, one to a line.
PAIR_LINE = re.compile(
    r"^\s*(?:\d+[.)]\s*)?(?:\*\*)?(?P<kind>q|question|a|answer)(?:\*\*)?\s*[:.]\s*(?:\*\*)?\s*(?P<text>.*)$", re.I
)


@dataclass(frozen=True)
class Chunk:
    document: Path
    number: int  # 1-based within its document
    offset: int | None  # where it starts in the document's text (None when the chunker rewrote it)
    text: str


@dataclass(frozen=True)
class Pair:
    question: str
    answer: str
    chunk: Chunk
    support: float

    def record(self) -> dict:
        return {"messages": [{"role": "user", "content": self.question}, {"role": "assistant", "content": self.answer}]}

    def source(self, line: int) -> dict:
        return {
            "line": line,
            "document": str(self.chunk.document),
            "chunk": self.chunk.number,
            "offset": self.chunk.offset,
            "support": round(self.support, 3),
        }


@dataclass
class SynthReport:
    chunks: int = 0
    chunks_done: int = 0
    generated: int = 0
    kept: list[Pair] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=lambda: {"unsupported": 0, "duplicate": 0, "lint": 0})
    seconds: float = 0.0
    cancelled: bool = False

    @property
    def seconds_per_chunk(self) -> float:
        return self.seconds / self.chunks_done if self.chunks_done else 0.0

    def to_json(self) -> dict:
        return {
            "chunks": self.chunks,
            "chunks_done": self.chunks_done,
            "pairs_generated": self.generated,
            "pairs_kept": len(self.kept),
            "dropped": dict(self.dropped),
            "seconds": round(self.seconds, 2),
            "seconds_per_chunk": round(self.seconds_per_chunk, 2),
            "cancelled": self.cancelled,
        }


def document_chunks(paths: list[Path], chunking: str, chunk_tokens: int, counter) -> list[Chunk]:
    if chunking not in CHUNKINGS:
        raise UserError(f"Unknown chunking {chunking!r} (choose {', '.join(CHUNKINGS)}).")
    chunker = Chunker(counter, chunk_tokens)
    chunks = []
    for path in find_documents(paths):
        document = read_document(path)
        text = "\n\n".join(document.pages)
        for number, piece in enumerate((c for c in chunker.chunks(document, chunking) if c.strip()), start=1):
            offset = text.find(piece[:80])
            chunks.append(Chunk(path, number, offset if offset >= 0 else None, piece))
    if not chunks:
        raise UserError("The documents hold no text to write questions about.")
    return chunks


def synth_messages(chunk: Chunk, pairs: int) -> list[dict]:
    """What the model is asked for one chunk."""
    return [
        {
            "role": "system",
            "content": "You write exam questions about a passage. Every answer must come from the passage itself.",
        },
        {
            "role": "user",
            "content": (
                f"Passage:\n{chunk.text}\n\n"
                f"Write {pairs} different questions that the passage answers, each with its answer in a short "
                "sentence taken from the passage. Use exactly this form, nothing else:\nQ: <question>\nA: <answer>"
            ),
        },
    ]


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """The "Q: ... / A: ..." pairs of a generation; an answer may run over several lines."""
    pairs, question, answer = [], None, None
    for line in text.splitlines():
        match = PAIR_LINE.match(line)
        if match and match["kind"].lower().startswith("q"):
            if question is not None and answer is not None:
                pairs.append((question, answer))
            question, answer = match["text"].strip(), None
        elif match and question is not None:
            answer = match["text"].strip()
        elif answer is not None and line.strip():
            answer = f"{answer} {line.strip()}"
    if question is not None and answer is not None:
        pairs.append((question, answer))
    return [(q, a) for q, a in pairs if q and a]


def _content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", text.lower()) if w not in STOPWORDS and (len(w) > 2 or w.isdigit())]


def support(answer: str, chunk_text: str) -> float:
    """The share of the answer's content words that occur in the chunk (1.0 for an answer of none)."""
    words = _content_words(answer)
    if not words:
        return 0.0
    present = set(_content_words(chunk_text))
    return sum(word in present for word in words) / len(words)


def _lint_problem(question: str, answer: str) -> bool:
    return (
        len(answer.split()) < MIN_ANSWER_WORDS
        or len(question.split()) < 2
        or bool(BOILERPLATE.search(answer))
        or normalised(question) == normalised(answer)
    )


class Synthesizer:
    """Pairs from chunks with one loaded chat model; `generate` is mlx-lm's batched greedy generation."""

    def __init__(self, generator, pairs_per_chunk: int = DEFAULT_PAIRS_PER_CHUNK, batch_size: int = 8) -> None:
        from lora_tui.core.data.rendering import has_chat_template

        if not has_chat_template(generator.tokenizer):
            raise UserError(
                f"{generator.model_name} has no chat template: data synth asks the model for questions, so it "
                "needs a chat (instruct) model."
            )
        if not 1 <= pairs_per_chunk <= 10:
            raise UserError("--pairs-per-chunk must be between 1 and 10.")
        if batch_size < 1:
            raise UserError("--batch-size must be at least 1.")
        self.generator, self.pairs_per_chunk, self.batch_size = generator, pairs_per_chunk, batch_size

    def _prompts(self, chunks: list[Chunk]) -> list[list[int]]:
        tokenizer = self.generator.tokenizer
        return [
            list(
                tokenizer.apply_chat_template(
                    synth_messages(chunk, self.pairs_per_chunk),
                    add_generation_prompt=True,
                    tokenize=True,
                    return_dict=False,
                )
            )
            for chunk in chunks
        ]

    def run(
        self,
        chunks: list[Chunk],
        stop: threading.Event | None = None,
        progress: Callable[[SynthReport], None] = lambda report: None,
    ) -> SynthReport:
        from lora_tui.core.inference.generate import greedy_batch

        report = SynthReport(chunks=len(chunks))
        seen: set[str] = set()
        started = time.perf_counter()
        for start in range(0, len(chunks), self.batch_size):
            if stop is not None and stop.is_set():
                report.cancelled = True
                break
            batch = chunks[start : start + self.batch_size]
            max_tokens = TOKENS_PER_PAIR * self.pairs_per_chunk
            answers = greedy_batch(self.generator.model, self.generator.tokenizer, self._prompts(batch), max_tokens)
            for chunk, answer in zip(batch, answers, strict=True):
                self._keep(chunk, parse_pairs(answer.text), report, seen)
            report.chunks_done += len(batch)
            report.seconds = time.perf_counter() - started
            progress(report)
        return report

    def _keep(self, chunk: Chunk, pairs: list[tuple[str, str]], report: SynthReport, seen: set[str]) -> None:
        for question, answer in pairs[: self.pairs_per_chunk]:
            report.generated += 1
            share = support(answer, chunk.text)
            key = normalised(question)
            if _lint_problem(question, answer):
                report.dropped["lint"] += 1
            elif share < SUPPORT_THRESHOLD:
                report.dropped["unsupported"] += 1
            elif key in seen:
                report.dropped["duplicate"] += 1
            else:
                seen.add(key)
                report.kept.append(Pair(question, answer, chunk, share))


def sources_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + ".sources.jsonl")


def check_outputs(out: Path) -> None:
    """Refuse before any generation when an output exists (nothing is ever overwritten)."""
    if out.suffix.lower() != ".jsonl":
        raise UserError(f"{out}: give the output a .jsonl name.")
    for path in (out, sources_path(out)):
        if path.exists():
            raise UserError(f"{path} already exists; choose another --out.")


def write_pairs(out: Path, pairs: list[Pair]) -> None:
    """The records and their sources, each file written whole (a temp file renamed into place)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    records = "".join(json.dumps(pair.record(), ensure_ascii=False) + "\n" for pair in pairs)
    sources = "".join(
        json.dumps(pair.source(line), ensure_ascii=False) + "\n" for line, pair in enumerate(pairs, start=1)
    )
    atomic_write_text(sources_path(out), sources, exclusive=True)
    atomic_write_text(out, records, exclusive=True)
