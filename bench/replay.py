"""Keep what it knew: the knowledge preset on made-up facts, with and without replay, on the demo model.

Each run trains the demo dataset (16 made-up facts, each asked three ways: 48 records) with the
knowledge preset, replay off and at two shares of each epoch. Then, for each adapter:
facts learned (held-out paraphrases whose answer contains the fact, of 16), the held-out test
loss, and drift from the base on the shipped general prompts (replay never trains on them).

    python bench/replay.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section


def timed_run(model: Path, data: Path, adapter: Path, values: dict) -> tuple[float, list]:
    from lora_tui.core.training.job import TrainingJob
    from lora_tui.core.training.loop import run_training
    from lora_tui.core.training.params import build_params

    events = []
    started = time.perf_counter()
    outcome = run_training(TrainingJob(model, data, adapter, build_params(values)), events.append)
    assert outcome.type == "finished", outcome
    return time.perf_counter() - started, events


def main() -> None:
    from lora_tui.core.data.demo import write_demo_dataset
    from lora_tui.core.evaluation.run import eval_records, evaluate, measure_drift
    from lora_tui.core.locations import Locations
    from lora_tui.core.models.demo import ensure_demo_model
    from lora_tui.core.training.params import PRESETS

    locations = Locations.from_environment().ensure()
    model = ensure_demo_model(locations.models_dir, locations.cache_dir, log=print)
    knowledge = PRESETS["knowledge"].values
    runs = {f"replay {share}" if share else "replay off": {**knowledge, "replay": share} for share in (0.0, 0.25, 0.5)}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "demo"
        write_demo_dataset(data)
        _, records = eval_records(data)
        adapters = {}
        for label, values in runs.items():
            adapters[label] = Path(scratch) / label.replace(" ", "-").replace(",", "")
            seconds, events = timed_run(model, data, adapters[label], values)
            drift_checks = [e.drift for e in events if e.type == "drift"]
            print(label, f"{seconds:.0f} s", "drift at validations:", [round(d, 2) for d in drift_checks], flush=True)
            adapters[label] = (adapters[label], seconds, events)
        sides = [("base", None)] + [(label, path) for label, (path, _, _) in adapters.items()]
        evaluation = evaluate(model, records, sides, max_tokens=32)
        summaries = [side.summary(evaluation.references) for side in evaluation.sides]
        for (label, path), summary in zip(sides, summaries, strict=True):
            drift = measure_drift(model, path)
            learned = round(summary["contained"] * summary["answered"])
            seconds = f"{adapters[label][1]:.0f} s" if path else "-"
            rows.append(
                f"| {label} | {seconds} | {learned} of {summary['answered']} | {summary['loss']:.3f} "
                f"| {drift['drift']:.2f} | {drift['changed']} of {drift['prompts']} "
                f"| {drift['kept']} of {drift['known']} |"
            )
    body = f"""
`python bench/replay.py`: {model.name}, the demo dataset (48 records of 16 made-up facts), the
{PRESETS["knowledge"].describe()}, with replay set as each row says. Facts learned: held-out paraphrased questions
whose greedy answer contains the fact. Drift: 1 - token F1 of the answers to the 24 shipped general
prompts against the base's own answers (0: unchanged); general facts kept: of those prompts with a
known answer that the base answered right, how many the adapter still answers right. Runs with
replay also check drift at every validation, which is in their wall time.

| model | training | facts learned | test loss | drift | general answers changed | general facts kept |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Replay is for the last column: the general facts the base answered right that the adapter still
answers. Drift also counts changes of wording (the facts' "one short sentence" style carries over
to general answers), which replay reduces less.
"""
    write_section("Keep what it knew: replay (bench/replay.py)", body)


if __name__ == "__main__":
    main()
