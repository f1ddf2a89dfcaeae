"""Export: how long each format takes for the demo model's adapter, and how fast llama.cpp decodes the
q8_0 export against `lora-tui chat` on the same weights (greedy, same prompt tokens, in this process).

    python bench/export.py [--max-tokens N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

PROMPT = "Write a short story about a robot who learns to paint."
FORMATS = ("peft", "gguf f16", "gguf q8_0", "gguf-lora", "ollama", "lmstudio")


def make_adapter(model: Path, adapters_dir: Path) -> Path:
    from lora_tui.core.training.job import TrainingJob
    from lora_tui.core.training.loop import run_training
    from lora_tui.core.training.params import build_params

    data = adapters_dir.parent / "data"
    data.mkdir(parents=True)
    row = {"messages": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello there!"}]}
    (data / "train.jsonl").write_text((json.dumps(row) + "\n") * 8)
    adapter = adapters_dir / "bench"
    outcome = run_training(TrainingJob(model, data, adapter, build_params({"epochs": 1, "max_seq_length": 128})))
    assert outcome.type == "finished", outcome
    return adapter


def time_exports(info, locations, out: Path) -> dict[str, float]:
    from lora_tui.core.adapters.exports import ExportRequest, export_adapter

    seconds = {}
    for label in FORMATS:
        export_format, _, type_name = label.partition(" ")
        request = ExportRequest(export_format, out / label.replace(" ", "-"), type_name or None)
        started = time.perf_counter()
        export_adapter(info, request, locations, [], out)
        seconds[label] = time.perf_counter() - started
    return seconds


def decode_speeds(model: Path, adapter: Path, gguf_file: Path, max_tokens: int) -> tuple[float, float, bool]:
    """(lora-tui tokens/s, llama.cpp tokens/s, same first 16 tokens of text) for one greedy answer."""
    import llama_cpp

    from lora_tui.core.inference.generate import GenerationStats, Generator, Sampling, Turn

    generator = Generator(model)
    generator.use_adapter(adapter)
    stats = GenerationStats()
    history = [Turn("user", PROMPT)]
    ours = "".join(generator.stream(history, Sampling(temperature=0.0, max_tokens=max_tokens), stats=stats))
    prompt = generator.prompt_tokens(history)
    llm = llama_cpp.Llama(str(gguf_file), n_ctx=512, verbose=False)
    llm.eval(prompt)  # prompt processing, not timed: tokens/s is decode speed on both sides
    tokens, started = [], time.perf_counter()
    for token in llm.generate([], top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=False):
        if token == llm.token_eos() or len(tokens) == max_tokens:
            break
        tokens.append(token)
    theirs_speed = len(tokens) / (time.perf_counter() - started)
    theirs = llm.detokenize(tokens).decode("utf-8", errors="replace")
    llm.close()
    return stats.tokens_per_second, theirs_speed, ours[:16] == theirs[:16]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    from lora_tui.core.adapters.registry import get_adapter
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model

    home = Locations.from_environment().ensure()
    model = ensure_demo_model(home.models_dir, home.cache_dir, log=print)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        locations = Locations(root / "data", root / "config", root / "cache").ensure()
        (locations.models_dir / model.name).symlink_to(model)
        adapter = make_adapter(model, locations.adapters_dir)
        seconds = time_exports(get_adapter(locations.adapters_dir, "bench"), locations, root / "out")
        ours, theirs, same = decode_speeds(model, adapter, root / "out" / "gguf-q8_0", args.max_tokens)
    rows = "\n".join(f"| {label} | {value:.2f} s |" for label, value in seconds.items())
    body = f"""
`python bench/export.py` (`make bench`): the demo model ({model.name}, 4-bit) with a LoRA adapter trained here.
Each export from a fresh call (the base is loaded, the adapter merged or converted, the files written).

| format | time |
|---|---|
{rows}

Greedy decode of one answer (max {args.max_tokens} tokens, prompt "{PROMPT}"), in this process:

| runtime | weights | decode tokens/s |
|---|---|---|
| `lora-tui chat` (MLX) | the 4-bit base + adapter (float32 at load on the CPU) | {ours:.1f} |
| llama.cpp (llama-cpp-python) | the q8_0 GGUF export, merged | {theirs:.1f} |

Same first 16 characters of text from both: **{"yes" if same else "no"}** (q8_0 rounds the weights again,
so greedy texts may part after a while).
"""
    write_section("Export (bench/export.py)", body)


if __name__ == "__main__":
    main()
