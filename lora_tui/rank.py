"""One rank of a distributed run: `python -m lora_tui.rank JOB_JSON`, started by `mlx.launch`.

The launching `lora-tui train --hosts` did every check and reports progress
from rank 0's events.jsonl; a rank only trains.
"""

from __future__ import annotations

import json
import sys

from lora_tui.core.training.events import Cancelled, Failed, Finished
from lora_tui.core.training.job import TrainingJob
from lora_tui.core.training.loop import run_training


def main(argv: list[str] | None = None) -> int:
    job = TrainingJob.from_json(json.loads((argv if argv is not None else sys.argv[1:])[0]))
    outcome = run_training(job)
    if isinstance(outcome, Failed):
        print(
            f"lora-tui rank: training failed: {outcome.reason} {outcome.advice}".rstrip(), file=sys.stderr, flush=True
        )
    return {Finished: 0, Cancelled: 130}.get(type(outcome), 1)


if __name__ == "__main__":
    sys.exit(main())
