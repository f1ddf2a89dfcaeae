"""A first dataset: made-up facts no model knows, asked in several ways, split into train, valid and test.

Every fact is asked five ways: three phrasings train, one validates and one is held out
for testing, so an evaluation asks questions the adapter never saw in training.
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
    out = Path(out).expanduser()
    if out.exists():
        raise UserError(f"{out} already exists; choose another folder.")
    counts = {}
    with building_dir(out) as staging:
        for split in SPLITS:
            records = demo_records(split)
            atomic_write_text(staging / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in records))
            counts[split] = len(records)
    return counts
