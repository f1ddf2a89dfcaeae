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

    def to_json(self) -> dict:
        return {"line": self.line, "kind": self.kind, "message": self.message}


def _fingerprint(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def normalised(text: str) -> str:
    """Case, punctuation and spacing folded: near-duplicates share this."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _line_list(lines: list[int], shown: int = 5) -> str:
    listed = ", ".join(str(line) for line in lines[:shown])
    return listed if len(lines) <= shown else f"{listed} and {len(lines) - shown} more"


class Linter:
    def __init__(self) -> None:
        self.warnings: list[LintWarning] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.exact: dict[str, int] = {}
        self.near: dict[str, int] = {}
        self.responses: dict[str, list[int]] = defaultdict(list)
        self.response_lengths: list[tuple[int, int]] = []

    def warn(self, line: int, kind: str, message: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= MAX_WARNINGS_PER_KIND:
            self.warnings.append(LintWarning(line, kind, message))

    def add(self, record: Record) -> None:
        text = record.plain_text()
        self._duplicates(record.line, record)
        if BOILERPLATE.search(text):
            self.warn(record.line, "boilerplate", f'boilerplate: "{BOILERPLATE.search(text).group(0)}"')
        if URL.search(text):
            self.warn(record.line, "url", f"contains a URL: {URL.search(text).group(0)[:60]}")
        longest = max((len(s.split()) for s in SENTENCE_END.split(text)), default=0)
        if longest > MAX_SENTENCE_WORDS:
            self.warn(record.line, "long-sentence", f"a sentence of {longest} words (over {MAX_SENTENCE_WORDS})")
        if record.is_chat:
            self._response(record)

    def _duplicates(self, line: int, record: Record) -> None:
        exact_key = _fingerprint(repr(record.to_json()))
        near_key = _fingerprint(normalised(record.plain_text()))
        if exact_key in self.exact:
            self.warn(line, "duplicate", f"exact duplicate of line {self.exact[exact_key]}")
        elif near_key in self.near:
            self.warn(
                line,
                "near-duplicate",
                f"near-duplicate of line {self.near[near_key]} (differs only in case, punctuation or spacing)",
            )
        self.exact.setdefault(exact_key, line)
        self.near.setdefault(near_key, line)

    def _response(self, record: Record) -> None:
        response = record.response.strip()
        if len(response) < SHORT_RESPONSE_CHARACTERS:
            self.warn(
                record.line,
                "short-response",
                "the response is empty or very short" if response else "the response is empty",
            )
        self.responses[_fingerprint(normalised(response))].append(record.line)
        self.response_lengths.append((record.line, len(response)))

    def finish(self) -> list[LintWarning]:
        for lines in self.responses.values():
            if len(lines) >= REPEATED_RESPONSE_MIN:
                self.warn(
                    lines[0],
                    "repeated-response",
                    f"the same response appears in {len(lines)} records: lines {_line_list(lines)}",
                )
        if len(self.response_lengths) >= 5:
            median = statistics.median(length for _, length in self.response_lengths)
            for line, length in self.response_lengths:
                if median and length > LONG_RESPONSE_FACTOR * median:
                    self.warn(line, "long-response", f"the response is {length / median:.0f}x the median length")
        return sorted(self.warnings, key=lambda w: (w.line, w.kind))
