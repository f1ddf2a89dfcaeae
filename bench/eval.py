"""Evaluation speed: greedy answers generated in batches against one prompt at a time, on the demo model.

64 prompts x up to 64 greedy tokens, through the same code `lora-tui eval` uses (mlx-lm's
batch_generate), with batch size 16 and with batch size 1, in one run; how many answers agree.

    python bench/eval.py [--prompts N] [--max-tokens N] [--batch-size N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    from lora_tui.core.data.demo import SPLITS, demo_records
    from lora_tui.core.evaluation.drift import drift_prompts
    from lora_tui.core.evaluation.run import greedy_answers
    from lora_tui.core.inference.generate import Generator, Turn
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model

    locations = Locations.from_environment().ensure()
    model = ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    generator = Generator(model)
    questions = drift_prompts() + [r["messages"][1]["content"] for s in SPLITS for r in demo_records(s)]
    prompts = [generator.prompt_tokens([Turn("user", q)]) for q in questions[: args.prompts]]
    greedy_answers(generator, prompts[:2], 4, 2)  # compile and warm up both paths
    batched, batched_speed = greedy_answers(generator, prompts, args.max_tokens, args.batch_size)
    single, single_speed = greedy_answers(generator, prompts, args.max_tokens, 1)
    speedup = batched_speed / single_speed
    agree = sum(a == b for a, b in zip(batched, single, strict=True))
    body = f"""
`python bench/eval.py` (`make bench`): {model.name} (float32 at load on the CPU), {len(prompts)} prompts
(general questions and the demo dataset's), greedy, up to {args.max_tokens} tokens each.

| generation | tokens/s | speed-up |
|---|---|---|
| batched, {args.batch_size} at a time (what `lora-tui eval` does) | {batched_speed:.1f} | {speedup:.2f}x |
| one prompt at a time | {single_speed:.1f} | 1.00x |

Answers identical in both: **{agree} of {len(prompts)}** (a batch pads prompts to a common length; greedy
decoding over padded rows can part after some tokens where two candidates are nearly tied).
"""
    write_section("Evaluation (bench/eval.py)", body)


if __name__ == "__main__":
    main()
