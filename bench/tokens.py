"""Token counting: lora-tui's tiktoken Encoding against the model's own tokenizer.

Same model (the demo model unless --model), same records, same chat template;
reports records per second for both and checks the counts are identical.

    python bench/tokens.py [--model M] [--records N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

from lora_tui.core.data.records import Record
from lora_tui.core.data.tokens import TokenCounter, load_token_counter

WORDS = [
    "LoRA",
    "adapters",
    "train",
    "low-rank",
    "matrices",
    "while",
    "the",
    "base",
    "model",
    "stays",
    "frozen;",
    "def",
    "f(x):",
    "return",
    "x**2",
    "#",
    "code",
    "12345",
    "🙂",
    "café",
    "東京",
    "https://example.com",
]


def make_records(count: int, seed: int = 0) -> list[Record]:
    rng = random.Random(seed)
    records = []
    for line in range(1, count + 1):
        user = " ".join(rng.choices(WORDS, k=rng.randint(5, 60)))
        assistant = " ".join(rng.choices(WORDS, k=rng.randint(10, 300)))
        records.append(
            Record(line, messages=({"role": "user", "content": user}, {"role": "assistant", "content": assistant}))
        )
    return records


def rate(function, items) -> tuple[float, list[int]]:
    start = time.perf_counter()
    results = [function(item) for item in items]
    return len(items) / (time.perf_counter() - start), results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--records", type=int, default=5000)
    args = parser.parse_args()
    model = Path(args.model) if args.model else default_model()
    fast = load_token_counter(model)
    reference = TokenCounter(fast.hf, encoding=None)
    records = make_records(args.records)
    texts = [fast.render(r) for r in records]

    for counter in (fast, reference):  # warm both
        counter.count_text(texts[0])
    fast_text, fast_counts = rate(fast.count_text, texts)
    ref_text, ref_counts = rate(reference.count_text, texts)
    fast_records, _ = rate(fast.count, records)
    ref_records, _ = rate(reference.count, records)
    assert fast_counts == ref_counts, "tiktoken counts differ from the model tokenizer's"
    tokens = sum(fast_counts)
    speedup = fast_records / ref_records
    body = f"""
Model `{model.name}`, {len(records)} chat records ({tokens} tokens), `python bench/tokens.py`.
Counts identical in both: **yes**.

| counting | lora-tui (tiktoken) | model tokenizer (HF fast) | speed-up |
|---|---|---|---|
| rendered text only, records/s | {fast_text:,.0f} | {ref_text:,.0f} | {fast_text / ref_text:.2f}x |
| records incl. chat template, records/s | {fast_records:,.0f} | {ref_records:,.0f} | {speedup:.2f}x |
"""
    write_section("Token counting (bench/tokens.py)", body)


def default_model() -> Path:
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model

    locations = Locations.from_environment().ensure()
    return ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)


if __name__ == "__main__":
    main()
