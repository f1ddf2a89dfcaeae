"""Documents (.txt, .md, .pdf) to training data: {"text": ...} records.

Chunking:
- paragraphs: whole paragraphs packed up to the chunk size; a paragraph that
  is too long is cut at sentence boundaries (spaCy's rule-based sentencizer).
- fixed: windows of exactly N tokens with an overlap between neighbours.
- pages: one chunk per PDF page (pages over the size are cut by paragraphs);
  other documents are split at form feeds.
Sizes are measured in the model's tokens when a tokenizer is given, else in
words (and the command says so).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_write_text

DOCUMENT_SUFFIXES = (".txt", ".md", ".pdf")
CHUNKINGS = ("paragraphs", "fixed", "pages")
DEFAULT_CHUNK_TOKENS = 512
DEFAULT_OVERLAP_FRACTION = 0.1


@dataclass(frozen=True)
class Document:
    path: Path
    pages: list[str]  # one entry for documents without pages


class WordCounter:
    """Sizes in words, for when no model tokenizer is given."""

    name = "words"

    def encode(self, text: str) -> list[str]:
        return re.findall(r"\S+\s*", text)

    def decode(self, pieces: list[str]) -> str:
        return "".join(pieces)


class ModelTokens:
    """Sizes in the model's tokens (a Hugging Face tokenizer)."""

    name = "tokens"

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def from_model(cls, model_path: Path) -> ModelTokens:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(model_path)))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)


def find_documents(paths: list[Path]) -> list[Path]:
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path}: no such file or folder.")
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES and p.is_file())
        elif path.suffix.lower() in DOCUMENT_SUFFIXES:
            found.append(path)
        else:
            raise UserError(f"{path}: not a .txt, .md or .pdf document.")
    if not found:
        raise UserError("No .txt, .md or .pdf documents found in " + ", ".join(map(str, paths)) + ".")
    return found


def read_document(path: Path) -> Document:
    if path.suffix.lower() == ".pdf":
        return Document(path, _pdf_pages(path))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (invalid byte at position {exc.start}).") from None
    return Document(path, text.replace("\r\n", "\n").split("\f"))


def _pdf_pages(path: Path) -> list[str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise UserError(f"{path}: the PDF is encrypted; decrypt it first.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise UserError(f"{path}: cannot read this PDF ({exc}).") from None
    if not any(page.strip() for page in pages):
        raise UserError(f"{path}: the PDF has no extractable text (a scanned image?).")
    return pages


def paragraphs(text: str) -> list[str]:
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text) if block.strip()]


def _sentencizer():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.max_length = 10_000_000
    return nlp


def _pack(units: list[str], size: Callable[[str], int], limit: int, separator: str) -> Iterator[str]:
    """Join consecutive units while the result stays within `limit`."""
    current: list[str] = []
    for unit in units:
        candidate = separator.join([*current, unit])
        if current and size(candidate) > limit:
            yield separator.join(current)
            current = [unit]
        else:
            current.append(unit)
    if current:
        yield separator.join(current)


class Chunker:
    def __init__(self, counter, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, overlap: int | None = None) -> None:
        if chunk_tokens < 16:
            raise UserError("--chunk-tokens must be at least 16.")
        self.counter = counter
        self.limit = chunk_tokens
        self.overlap = int(chunk_tokens * DEFAULT_OVERLAP_FRACTION) if overlap is None else overlap
        self._nlp = None

    def size(self, text: str) -> int:
        return len(self.counter.encode(text))

    def sentences(self, text: str) -> list[str]:
        if self._nlp is None:
            self._nlp = _sentencizer()
        return [s.text.strip() for s in self._nlp(text).sents if s.text.strip()]

    def by_paragraphs(self, text: str) -> Iterator[str]:
        units: list[str] = []
        for paragraph in paragraphs(text):
            if self.size(paragraph) <= self.limit:
                units.append(paragraph)
                continue
            for piece in _pack(self.sentences(paragraph), self.size, self.limit, " "):
                units += list(self.fixed(piece)) if self.size(piece) > self.limit else [piece]
        yield from _pack(units, self.size, self.limit, "\n\n")

    def fixed(self, text: str) -> Iterator[str]:
        ids = self.counter.encode(text)
        step = max(1, self.limit - self.overlap)
        for start in range(0, len(ids), step):
            yield self.counter.decode(ids[start : start + self.limit]).strip()
            if start + self.limit >= len(ids):
                break

    def chunks(self, document: Document, chunking: str) -> Iterator[str]:
        if chunking == "pages":
            for page in document.pages:
                yield from ([" ".join(page.split())] if self.size(page) <= self.limit else self.by_paragraphs(page))
            return
        text = "\n\n".join(document.pages)
        yield from self.by_paragraphs(text) if chunking == "paragraphs" else self.fixed(text)


def documents_to_jsonl(
    paths: list[Path],
    out: Path,
    chunking: str = "paragraphs",
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    counter=None,
    redactor=None,
) -> dict:
    if chunking not in CHUNKINGS:
        raise UserError(f"Unknown chunking {chunking!r} (choose {', '.join(CHUNKINGS)}).")
    out = Path(out)
    if out.exists():
        raise UserError(f"{out} already exists; choose another --out.")
    chunker = Chunker(counter or WordCounter(), chunk_tokens)
    files = find_documents(paths)
    texts = [chunk for path in files for chunk in chunker.chunks(read_document(path), chunking) if chunk]
    if redactor is not None:
        texts = redactor.redact_texts(texts)
    atomic_write_text(out, "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), exclusive=True)
    return {"documents": len(files), "records": len(texts), "unit": chunker.counter.name, "output": str(out)}
