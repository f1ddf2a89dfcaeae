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
