"""`data synth` speed: seconds per chunk with chunks batched (what lora-tui does) against mlx-lm's own
`generate`, one chunk at a time, on the same prompts, in one run, on the demo model.

    python bench/synth.py [--chunks N] [--pairs-per-chunk N] [--batch-size N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

DOCS = Path(__file__).resolve().parent.parent / "tests" / "data" / "docs-synth"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--pairs-per-chunk", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    from mlx_lm import generate

    from lora_tui.core.data.documents import ModelTokens
    from lora_tui.core.data.synth import TOKENS_PER_PAIR, Synthesizer, document_chunks, parse_pairs
    from lora_tui.core.inference.generate import Generator
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model

    locations = Locations.from_environment().ensure()
    model = ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    generator = Generator(model)
    found = document_chunks([DOCS], "paragraphs", 60, ModelTokens(generator.tokenizer))
    chunks = (found * args.chunks)[: args.chunks]
    synthesizer = Synthesizer(generator, args.pairs_per_chunk, args.batch_size)
    synthesizer.run(chunks[:1])  # warm up
    report = synthesizer.run(chunks)
    started = time.perf_counter()
    reference_pairs = 0
    for prompt in synthesizer._prompts(chunks):
        text = generate(generator.model, generator.tokenizer, prompt, max_tokens=TOKENS_PER_PAIR * args.pairs_per_chunk)
        reference_pairs += min(len(parse_pairs(text)), args.pairs_per_chunk)
    reference = (time.perf_counter() - started) / len(chunks)
    ours = f"{report.generated} | {len(report.kept)}"
    body = f"""
`python bench/synth.py` (`make bench`): {model.name} writing {args.pairs_per_chunk} pairs for each of
{len(chunks)} chunks of about 60 tokens (tests/data/docs-synth), greedy, up to
{TOKENS_PER_PAIR * args.pairs_per_chunk} tokens a chunk.

| generation | seconds a chunk | pairs parsed (at most {args.pairs_per_chunk} a chunk) | pairs kept |
|---|---|---|---|
| lora-tui `data synth`, {args.batch_size} chunks a batch | {report.seconds_per_chunk:.2f} | {ours} |
| mlx-lm `generate`, one chunk at a time | {reference:.2f} | {reference_pairs} | - |

A 135M model writes poor questions (most answers are dropped as unsupported by their chunk); the figures are the
pipeline's cost. A larger writer costs about its size ratio more per token.
"""
    write_section("Question-answer pairs from documents (bench/synth.py)", body)


if __name__ == "__main__":
    main()
