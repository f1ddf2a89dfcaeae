"""llama.cpp (through llama-cpp-python) as the outside judge of GGUF exports.

Weight repacking is off when a file is loaded: on CPUs with AVX-512 and AMX (an Intel Xeon
here), llama.cpp's repacked Q4_1 kernels crash in decode (llama-cpp-python 0.3.36, with
SmolLM2's own Q4_1 file, no lora-tui file involved). Repacking rearranges weights in memory
for speed; the arithmetic being judged is the same without it.
"""

from unittest.mock import patch

import pytest

llama_cpp = pytest.importorskip(
    "llama_cpp", reason="LOUD SKIP: llama-cpp-python did not build on this machine, so no GGUF export is verified"
)


def load_gguf(path, **options):
    """llama_cpp.Llama for the GGUF file at `path`, its weights not repacked."""
    defaults = llama_cpp.llama.llama_cpp.llama_model_default_params

    def without_repacking():
        params = defaults()
        params.use_extra_bufts = False
        return params

    with patch.object(llama_cpp.llama.llama_cpp, "llama_model_default_params", without_repacking):
        return llama_cpp.Llama(str(path), **options)


def greedy_answer(gguf_file, prompt: list[int], lora=None) -> str:
    model = load_gguf(gguf_file, n_ctx=256, verbose=False, n_threads=2, lora_path=str(lora) if lora else None)
    answer = []
    for token in model.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
        if token == model.token_eos() or len(answer) == 12:
            break
        answer.append(token)
    text = model.detokenize(answer).decode("utf-8", errors="replace")
    model.close()
    return text
