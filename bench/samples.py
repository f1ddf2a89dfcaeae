"""What samples while training cost: the same run on the demo model with and without --sample-every 1.

The demo dataset (48 train, 16 valid records), 2 epochs, a validation every 4 steps; with
samples, 3 validation prompts are answered greedily (up to 48 tokens) at every validation.

    python bench/samples.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section


def timed_run(model: Path, data: Path, adapter: Path, sample_every: int) -> tuple[float, int, int]:
    from lora_tui.core.training.job import TrainingJob
    from lora_tui.core.training.loop import run_training
    from lora_tui.core.training.params import build_params

    events = []
    params = build_params({"epochs": 2, "steps_per_eval": 4, "max_seq_length": 96, "sample_every": sample_every})
    started = time.perf_counter()
    outcome = run_training(TrainingJob(model, data, adapter, params), events.append)
    assert outcome.type == "finished", outcome
    steps = sum(e.type == "step" for e in events)
    return time.perf_counter() - started, steps, sum(e.type == "sample" for e in events)


def main() -> None:
    from lora_tui.core.data.demo import write_demo_dataset
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model

    locations = Locations.from_environment().ensure()
    model = ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "demo"
        write_demo_dataset(data)
        timed_run(model, data, Path(scratch) / "warm-up", 0)  # compile, caches
        plain, steps, _ = timed_run(model, data, Path(scratch) / "plain", 0)
        sampled, _, samples = timed_run(model, data, Path(scratch) / "sampled", 1)
    cost = sampled / plain - 1
    body = f"""
`python bench/samples.py`: {model.name}, the demo dataset, 2 epochs ({steps} steps), a validation every 4 steps.

| run | samples | wall time | cost |
|---|---|---|---|
| without samples | 0 | {plain:.1f} s | - |
| `--sample-every 1` (3 prompts, up to 48 tokens, each validation) | {samples} | {sampled:.1f} s | +{cost:.0%} |

More than a few percent of a run, so samples are off by default; every few validations
(`--sample-every 5`, say) costs a fifth of this.
"""
    write_section("Samples while training (bench/samples.py)", body)


if __name__ == "__main__":
    main()
