"""Dataset lint: warnings that do not stop training but deserve a look.

One streaming pass: each record is fed to `Linter.add`; `finish` returns the
warnings, each naming its line. Per-record state is small (hashes, lengths).
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass

from lora_tui.core.data.records import URL, Record

MAX_SENTENCE_WORDS = 28
SHORT_RESPONSE_CHARACTERS = 3
LONG_RESPONSE_FACTOR = 5.0  # "far longer": this many times the median response
REPEATED_RESPONSE_MIN = 3  # one response in this many records or more
MAX_WARNINGS_PER_KIND = 50

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
BOILERPLATE = re.compile(
    r"\bas an ai\b|\bas a(?:n)? (?:large )?language model\b|\bi(?: a|')m (?:just )?an ai\b|"
    r"\bi cannot (?:browse|access) the internet\b|\bmy (?:training|knowledge) (?:data|cutoff)\b|"
    r"\bi (?:do not|don't) have (?:personal )?(?:opinions|feelings|emotions)\b|"
    r"\bplease consult (?:a|an|your) (?:professional|doctor|lawyer)\b"
    r"|\bthis is not (?:legal|medical|financial) advice\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LintWarning:
    line: int
    kind: str
    message: str
    file: str | None = None  # which file of a train/valid/test folder; None for a single file
    unit: str = "line"  # "row" in a table

    @property
    def where(self) -> str:
        return f"{self.unit} {self.line}"

    def to_json(self) -> dict:
        return {
            self.unit: self.line,
            "kind": self.kind,
            "message": self.message,
            **({"file": self.file} if self.file else {}),
        }


def _fingerprint(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def normalised(text: str) -> str:
    """Case, punctuation and spacing folded: near-duplicates share this."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


Where = tuple  # (file name or None, line): a record's place in a dataset of one file or several


def _at(where: Where, unit: str = "line") -> str:
    file, line = where
    return f"{file} {unit} {line}" if file else f"{unit} {line}"


def _line_list(places: list[Where], shown: int = 5, unit: str = "line") -> str:
    """ "lines 2, 4, 6", or across a folder's files "train.jsonl lines 1, 2; valid.jsonl line 1"."""
    groups: list[tuple[str | None, list[int]]] = []
    for file, line in places[:shown]:
        if groups and groups[-1][0] == file:
            groups[-1][1].append(line)
        else:
            groups.append((file, [line]))
    listed = "; ".join(
        f"{file + ' ' if file else ''}{unit}{'s' * (len(lines) > 1)} {', '.join(map(str, lines))}"
        for file, lines in groups
    )
    return listed if len(places) <= shown else f"{listed} and {len(places) - shown} more"


class Linter:
    def __init__(self) -> None:
        self.warnings: list[LintWarning] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.exact: dict[str, Where] = {}
        self.near: dict[str, Where] = {}
        self.responses: dict[str, list[Where]] = defaultdict(list)
        self.response_lengths: list[tuple[Where, int]] = []
        self.unit = "line"

    def warn(self, where: Where, kind: str, message: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= MAX_WARNINGS_PER_KIND:
            self.warnings.append(LintWarning(where[1], kind, message, where[0], self.unit))

    def add(self, record: Record, file: str | None = None) -> None:
        """One record; `file` names which file of a folder it is in (None for a dataset of one file)."""
        self.unit = "row" if record.place else "line"
        where = (file, record.line)
        text = record.plain_text()
        self._duplicates(where, record)
        if BOILERPLATE.search(text):
            self.warn(where, "boilerplate", f'boilerplate: "{BOILERPLATE.search(text).group(0)}"')
        if URL.search(text):
            self.warn(where, "url", f"contains a URL: {URL.search(text).group(0)[:60]}")
        longest = max((len(s.split()) for s in SENTENCE_END.split(text)), default=0)
        if longest > MAX_SENTENCE_WORDS:
            self.warn(where, "long-sentence", f"a sentence of {longest} words (over {MAX_SENTENCE_WORDS})")
        if record.is_chat and not record.is_prompt:  # a GRPO prompt has no response of its own
            self._response(where, record)

    def _duplicates(self, where: Where, record: Record) -> None:
        exact_key = _fingerprint(repr(record.to_json()))
        near_key = _fingerprint(normalised(record.plain_text()))
        if exact_key in self.exact:
            self.warn(where, "duplicate", f"exact duplicate of {_at(self.exact[exact_key], self.unit)}")
        elif near_key in self.near:
            self.warn(
                where,
                "near-duplicate",
                f"near-duplicate of {_at(self.near[near_key], self.unit)} "
                "(differs only in case, punctuation or spacing)",
            )
        self.exact.setdefault(exact_key, where)
        self.near.setdefault(near_key, where)

    def _response(self, where: Where, record: Record) -> None:
        response = record.response.strip()
        if len(response) < SHORT_RESPONSE_CHARACTERS:
            self.warn(
                where,
                "short-response",
                "the response is empty or very short" if response else "the response is empty",
            )
        self.responses[_fingerprint(normalised(response))].append(where)
        self.response_lengths.append((where, len(response)))

    def finish(self) -> list[LintWarning]:
        for places in self.responses.values():
            if len(places) >= REPEATED_RESPONSE_MIN:
                self.warn(
                    places[0],
                    "repeated-response",
                    f"the same response appears in {len(places)} records: {_line_list(places, unit=self.unit)}",
                )
        if len(self.response_lengths) >= 5:
            median = statistics.median(length for _, length in self.response_lengths)
            for where, length in self.response_lengths:
                if median and length > LONG_RESPONSE_FACTOR * median:
                    self.warn(where, "long-response", f"the response is {length / median:.0f}x the median length")
        return sorted(self.warnings, key=lambda w: (w.file or "", w.line, w.kind))
