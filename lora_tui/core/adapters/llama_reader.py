"""llama.cpp's next-token picks along given token sequences, in a process of its own.

`python -m lora_tui.core.adapters.llama_reader` reads one JSON request on stdin,
`{"model": FILE, "lora": FILE or null, "cases": [{"tokens": [...], "picks": N}, ...]}`, and prints
`{"picks": [[...], ...]}`: for each case, llama.cpp's most likely token at each of the last N
positions before the end. Weight repacking is off: on CPUs with AVX-512 and AMX its repacked
kernels have crashed in decode (llama-cpp-python 0.3.36); the arithmetic is the same without it.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


def _without_repacking(llama_module) -> None:
    defaults = llama_module.llama_cpp.llama_model_default_params

    def params():
        chosen = defaults()
        chosen.use_extra_bufts = False
        return chosen

    llama_module.llama_cpp.llama_model_default_params = params


def main() -> int:
    request = json.load(sys.stdin)
    from llama_cpp import Llama
    from llama_cpp import llama as llama_module

    _without_repacking(llama_module)
    longest = max((len(case["tokens"]) for case in request["cases"]), default=1)
    model = Llama(
        request["model"],
        lora_path=request.get("lora"),
        n_ctx=max(256, longest + 8),
        logits_all=True,
        verbose=False,
        n_threads=os.cpu_count() or 2,
    )
    picks = []
    for case in request["cases"]:
        tokens, count = case["tokens"], case["picks"]
        model.reset()
        model.eval(tokens)
        scores = np.array(model.scores[: len(tokens)])
        picks.append(scores[len(tokens) - 1 - count : len(tokens) - 1].argmax(-1).tolist())
    model.close()
    print(json.dumps({"picks": picks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
