"""The demo model with an adapter, exported as one GGUF file, answers in llama.cpp as it does in lora-tui."""

import pytest
from conftest import DEMO_CACHE
from generation import complete
from llamajudge import greedy_answer
from trainkit import train, write_dataset

from lora_tui.core.adapters.gguf_export import export_gguf, export_lora_gguf
from lora_tui.core.inference.generate import Generator, Sampling, Turn
from lora_tui.core.models.demo import demo_gguf_file

pytestmark = pytest.mark.e2e
QUESTION = "Say the code word."


@pytest.fixture(scope="module")
def code_word_adapter(demo_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("code-word")
    rows = [
        {"messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Marzipan-42."}]}
    ] * 16
    outcome = train(demo_model_dir, write_dataset(root / "data", rows), root / "code-word", epochs=2, max_seq_length=64)
    assert outcome.type == "finished"
    return root / "code-word"


def test_the_fused_f16_file_answers_as_lora_tui_does(demo_model_dir, code_word_adapter, tmp_path):
    generator = Generator(demo_model_dir)
    generator.use_adapter(code_word_adapter)
    ours, _ = complete(generator, [Turn("user", QUESTION)], Sampling(temperature=0.0, max_tokens=12))
    assert "Marzipan" in ours
    prompt = generator.prompt_tokens([Turn("user", QUESTION)])

    theirs = greedy_answer(export_gguf(demo_model_dir, tmp_path / "code-word.gguf", code_word_adapter, "f16"), prompt)
    assert "Marzipan" in theirs
    assert theirs[:12] == ours[:12], (theirs, ours)


def test_the_lora_file_applies_to_the_gguf_the_demo_model_came_from(demo_model_dir, code_word_adapter, tmp_path):
    original = demo_gguf_file(DEMO_CACHE / "cache")  # SmolLM2's own Q4_1 file from PyPI, not one we wrote
    prompt = Generator(demo_model_dir).prompt_tokens([Turn("user", QUESTION)])
    lora_file = export_lora_gguf(code_word_adapter, demo_model_dir, tmp_path / "code-word-lora.gguf")
    assert "Marzipan" not in greedy_answer(original, prompt)
    assert "Marzipan" in greedy_answer(original, prompt, lora_file)
