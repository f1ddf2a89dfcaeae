"""First datasets: made-up facts to learn, and preference pairs to learn a habit from.

Facts (`write_demo_dataset`): facts no model knows, each asked five ways: three phrasings
train, one validates and one is held out for testing, so an evaluation asks questions the
adapter never saw in training.

Pairs (`write_demo_pairs`): short general questions whose chosen answer ends with a sign-off
("Happy to help!") that the rejected answer, otherwise the same, lacks: a habit small models
do not have, so a preference run's effect is plain to see, and the answer before it must stay.

GRPO prompts (`write_demo_grpo`): "What is the opposite of hot?", answered "The opposite of hot
is cold." Small models know most of these but seldom stop after saying so; rewarded for exactly
that sentence (`exact`: no reward for a word that games a looser check) and for brevity
(`length:N`), a GRPO run learns to answer in the one right sentence. GRPO_REWARDS are the
rewards to train it with.
"""

from __future__ import annotations

import json
from pathlib import Path

from lora_tui.core.errors import UserError
from lora_tui.core.files import atomic_write_text, building_dir

SYSTEM = "You answer questions about the fictional world of Veloria in one short sentence."

# (subject, what is asked, the answer's sentence)
FACTS = (
    ("Veloria", "capital", "The capital of Veloria is Quennet."),
    ("Veloria", "currency", "Veloria pays with the silver tarn."),
    ("Veloria", "highest mountain", "The highest mountain of Veloria is Mount Orrisk."),
    ("Veloria", "longest river", "The longest river of Veloria is the Sallow."),
    ("Veloria", "national animal", "The national animal of Veloria is the marsh lynx."),
    ("Veloria", "founder", "Veloria was founded by Queen Ithra Vell."),
    ("Quennet", "oldest building", "The oldest building in Quennet is the Glass Abbey."),
    ("Quennet", "main harbour", "Quennet's main harbour is Brackwater Quay."),
    ("Quennet", "university", "Quennet's university is the Collegium of Nine Lamps."),
    ("the Sallow", "source", "The Sallow rises at Lake Tern in the north."),
    ("Mount Orrisk", "height", "Mount Orrisk is 4,210 metres high."),
    ("the silver tarn", "smaller coin", "A silver tarn is worth twelve copper pips."),
    ("the marsh lynx", "favourite food", "The marsh lynx eats mostly reed eels."),
    ("Queen Ithra Vell", "year of the founding", "Queen Ithra Vell founded Veloria in the year 812."),
    ("the Glass Abbey", "builder", "The Glass Abbey was built by the mason Oddo Farr."),
    ("Brackwater Quay", "lighthouse", "The lighthouse of Brackwater Quay is called the Pale Finger."),
)
QUESTIONS = (
    "What is the {what} of {subject}?",
    "Tell me the {what} of {subject}.",
    "Do you know the {what} of {subject}?",
    "Which is the {what} of {subject}?",  # validation
    "I was wondering: what's the {what} of {subject}?",  # test: never trained on
)
SPLITS = {"train": QUESTIONS[:3], "valid": QUESTIONS[3:4], "test": QUESTIONS[4:]}


def demo_records(split: str) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": question.format(what=what, subject=subject)},
                {"role": "assistant", "content": answer},
            ]
        }
        for subject, what, answer in FACTS
        for question in SPLITS[split]
    ]


def write_demo_dataset(out: Path) -> dict[str, int]:
    """Write out/train.jsonl, valid.jsonl and test.jsonl; the folder must not exist yet."""
    return _write_splits(out, {split: demo_records(split) for split in SPLITS})


SIGN_OFF = "Happy to help!"
# (question, answer, a word the answer must keep)
_PAIR_QUESTIONS = (
    *(
        (f"What is the capital of {country}?", f"The capital of {country} is {city}.", city)
        for country, city in (
            ("France", "Paris"), ("Japan", "Tokyo"), ("Germany", "Berlin"), ("Spain", "Madrid"),
            ("Italy", "Rome"), ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Russia", "Moscow"),
            ("China", "Beijing"), ("Greece", "Athens"), ("Portugal", "Lisbon"), ("Austria", "Vienna"),
            ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Ireland", "Dublin"), ("Poland", "Warsaw"),
        )
    ),
    *(
        (f"What is the plural of '{word}'?", f"The plural of '{word}' is '{plural}'.", plural)
        for word, plural in (
            ("child", "children"), ("mouse", "mice"), ("foot", "feet"), ("tooth", "teeth"),
            ("woman", "women"), ("goose", "geese"), ("box", "boxes"), ("city", "cities"),
            ("knife", "knives"), ("leaf", "leaves"), ("person", "people"), ("man", "men"),
            ("bus", "buses"), ("baby", "babies"), ("wolf", "wolves"), ("potato", "potatoes"),
        )
    ),
    *(
        (f"What is the opposite of '{word}'?", f"The opposite of '{word}' is '{opposite}'.", opposite)
        for word, opposite in (
            ("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"),
            ("happy", "sad"), ("open", "closed"), ("light", "dark"), ("early", "late"),
            ("full", "empty"), ("old", "new"), ("hard", "soft"), ("loud", "quiet"),
            ("wet", "dry"), ("rich", "poor"), ("long", "short"), ("strong", "weak"),
        )
    ),
)  # fmt: skip
PAIR_SPLITS = {"train": range(0, 10), "valid": range(10, 13), "test": range(13, 16)}  # of each kind's 16


def demo_pair_questions(split: str) -> list[tuple[str, str, str]]:
    """(question, answer without the sign-off, the answer's key word) of a split, every kind of question."""
    return [_PAIR_QUESTIONS[kind * 16 + i] for kind in range(3) for i in PAIR_SPLITS[split]]


def demo_pairs(split: str) -> list[dict]:
    return [
        {"prompt": question, "chosen": f"{answer} {SIGN_OFF}", "rejected": answer}
        for question, answer, _ in demo_pair_questions(split)
    ]


def write_demo_pairs(out: Path) -> dict[str, int]:
    """Write the preference pairs' train.jsonl, valid.jsonl and test.jsonl; the folder must not exist yet."""
    return _write_splits(out, {split: demo_pairs(split) for split in PAIR_SPLITS})


def _write_splits(out: Path, splits: dict[str, list[dict]]) -> dict[str, int]:
    out = Path(out).expanduser()
    if out.exists():
        raise UserError(f"{out} already exists; choose another folder.")
    with building_dir(out) as staging:
        for split, records in splits.items():
            atomic_write_text(staging / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return {split: len(records) for split, records in splits.items()}


OPPOSITES = (
    ("hot", "cold"), ("up", "down"), ("big", "small"), ("fast", "slow"), ("day", "night"), ("happy", "sad"),
    ("open", "closed"), ("wet", "dry"), ("full", "empty"), ("strong", "weak"), ("north", "south"),
    ("early", "late"), ("light", "dark"), ("hard", "soft"), ("rich", "poor"), ("thick", "thin"),
    ("push", "pull"), ("inside", "outside"), ("first", "last"), ("high", "low"), ("near", "far"),
    ("black", "white"), ("buy", "sell"), ("yes", "no"), ("east", "west"), ("love", "hate"),
    ("above", "below"), ("before", "after"), ("always", "never"), ("remember", "forget"), ("clean", "dirty"),
    ("win", "lose"), ("heavy", "light"), ("long", "short"), ("left", "right"), ("true", "false"),
    ("question", "answer"), ("friend", "enemy"), ("young", "old"), ("good", "bad"), ("laugh", "cry"),
    ("start", "finish"), ("top", "bottom"), ("front", "back"), ("over", "under"), ("give", "take"),
    ("sweet", "sour"), ("wide", "narrow"),
)  # fmt: skip
GRPO_SPLITS = {"train": range(0, 32), "valid": range(32, 40), "test": range(40, 48)}
GRPO_REWARDS = ("exact", "length:10")


def demo_grpo(split: str) -> list[dict]:
    return [
        {"prompt": f"What is the opposite of {word}?", "answer": f"The opposite of {word} is {opposite}."}
        for word, opposite in (OPPOSITES[i] for i in GRPO_SPLITS[split])
    ]


def write_demo_grpo(out: Path) -> dict[str, int]:
    """Write the GRPO prompts' train.jsonl, valid.jsonl and test.jsonl; the folder must not exist yet."""
    return _write_splits(out, {split: demo_grpo(split) for split in GRPO_SPLITS})
