"""How close an answer is to its reference: exact match, contained, token F1, and chrF (sacrebleu's)."""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass

from sacrebleu.metrics import CHRF

_CHRF = CHRF()
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalized(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's normalization)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


@dataclass(frozen=True)
class Scores:
    exact: bool  # the normalized answer is the normalized reference
    contained: bool  # the normalized reference appears in the normalized answer
    token_f1: float  # overlap of their words, 0-1
    chrf: float  # character n-gram F-score, 0-100 (sacrebleu)

    def to_json(self) -> dict:
        return {"exact": self.exact, "contained": self.contained, "token_f1": self.token_f1, "chrf": self.chrf}


def score(answer: str, reference: str) -> Scores:
    answer_words, reference_words = normalized(answer).split(), normalized(reference).split()
    common = sum((Counter(answer_words) & Counter(reference_words)).values())
    if common == 0:
        f1 = float(answer_words == reference_words)  # both empty: a match
    else:
        precision, recall = common / len(answer_words), common / len(reference_words)
        f1 = 2 * precision * recall / (precision + recall)
    return Scores(
        exact=answer_words == reference_words,
        contained=bool(reference_words) and f" {' '.join(reference_words)} " in f" {' '.join(answer_words)} ",
        token_f1=f1,
        chrf=_CHRF.sentence_score(answer, [reference]).score,
    )
