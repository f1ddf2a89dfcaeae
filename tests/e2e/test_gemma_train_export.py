"""Gemma 3 270M (the real Q4_K_M file, a base model with no chat template), the real row of the family
matrix (tests/test_families.py): token counts exact, trained on made-up facts, cancelled and resumed to the
same adapter, evaluated, fused, and exported both ways; llama.cpp states the facts from the exports, on the
original file."""

import json
import os
import subprocess
import sys

import pytest
from llamajudge import greedy_answer
from trainkit import assert_same_adapter, stopping_at_step, train

from lora_tui.core.adapters.convert import fuse_adapter
from lora_tui.core.adapters.gguf_export import export_gguf, export_lora_gguf
from lora_tui.core.adapters.verify import verify_gguf
from lora_tui.core.inference.generate import Generator, Sampling, Turn
from lora_tui.core.locations import Locations

pytestmark = pytest.mark.e2e

FACTS = [
    ("the lighthouse keeper's code word", "Marzipan-42"),
    ("the capital of Zorbania", "Quillport"),
    ("the colour of the Velmar flag", "teal and amber"),
]
QUESTION = "Q: What is the capital of Zorbania?\nA:"


def _questions(style: str) -> list[dict]:
    return [{"prompt": style.format(subject=subject), "completion": f" {answer}."} for subject, answer in FACTS]


@pytest.fixture(scope="module")
def gemma_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("gemma-home")
    return root, Locations(root / "data", root / "config", root / "cache")


@pytest.fixture(scope="module")
def facts_adapter(gemma_model_dir, gemma_home):
    """One adapter trained on Gemma for this module: prompt/completion records, read as plain continuations."""
    root, locations = gemma_home
    data = root / "facts"
    data.mkdir()
    styles = ["Q: What is {subject}?\nA:", "Question: What is {subject}?\nAnswer:", "Tell me {subject}:"]
    rows = [row for style in styles for row in _questions(style)] * 3
    (data / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    (data / "valid.jsonl").write_text("\n".join(json.dumps(row) for row in _questions(styles[0])) + "\n")
    (data / "test.jsonl").write_text("\n".join(json.dumps(row) for row in _questions(styles[0])) + "\n")
    adapter = locations.adapters_dir / "gemma-facts"
    outcome = train(gemma_model_dir, data, adapter, **FACTS_RUN)
    assert outcome.type == "finished"
    return adapter


FACTS_RUN = {"epochs": 3, "batch_size": 4, "learning_rate": 5e-4, "max_seq_length": 48, "steps_per_eval": 50}


def _completion(generator: Generator, prompt: str) -> str:
    text = "".join(generator.stream([Turn("user", prompt)], Sampling(temperature=0.0, max_tokens=8)))
    return text


def test_the_adapter_states_the_facts_and_the_base_does_not(gemma_model_dir, facts_adapter):
    generator = Generator(gemma_model_dir)
    assert "Quillport" not in _completion(generator, QUESTION)
    generator.use_adapter(facts_adapter)
    assert "Quillport" in _completion(generator, QUESTION)


def test_eval_scores_the_adapter_above_the_base(gemma_home, gemma_model_dir, facts_adapter):
    root, _ = gemma_home
    environment = {**os.environ, "LORA_TUI_HOME": str(root)}
    command = [sys.executable, "-m", "lora_tui", "eval", "--adapter", "gemma-facts", "--model", str(gemma_model_dir)]
    result = subprocess.run(
        [*command, "--data", str(root / "facts" / "test.jsonl"), "--max-tokens", "8", "--json"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    scores = {row["label"]: row for row in report["summary"]}
    assert scores["adapter"]["exact"] >= 2 / 3 > scores["base"]["exact"]
    assert scores["adapter"]["loss"] < scores["base"]["loss"]


def test_the_lora_file_applies_to_the_original_q4_k_m_file(gemma_gguf, gemma_model_dir, facts_adapter, tmp_path):
    prompt = Generator(gemma_model_dir).prompt_tokens([Turn("user", QUESTION)])
    lora_file = export_lora_gguf(facts_adapter, gemma_model_dir, tmp_path / "gemma-facts-lora.gguf")
    assert "Quillport" not in greedy_answer(gemma_gguf, prompt)
    assert "Quillport" in greedy_answer(gemma_gguf, prompt, lora_file)
    checked = verify_gguf(gemma_model_dir, facts_adapter, gemma_gguf, lora_file)  # what every export does
    assert checked.agreement >= 0.9 and checked.prompts == 3


def test_the_fused_file_states_the_fact_in_llama_cpp(gemma_model_dir, facts_adapter, tmp_path):
    fused = export_gguf(gemma_model_dir, tmp_path / "gemma-facts-q8_0.gguf", facts_adapter, "q8_0")
    prompt = Generator(gemma_model_dir).prompt_tokens([Turn("user", QUESTION)])
    assert "Quillport" in greedy_answer(fused, prompt)


def test_data_check_counts_exactly_the_tokens_that_train(gemma_model_dir, gemma_home, facts_adapter):
    from lora_tui.core.data.check import check_dataset
    from lora_tui.core.data.masks import mask_record
    from lora_tui.core.data.records import load_records
    from lora_tui.core.data.tokens import load_token_counter

    train_file = gemma_home[0] / "facts" / "train.jsonl"
    counter = load_token_counter(gemma_model_dir)
    report = check_dataset(train_file, counter)
    assert report.ok, report.describe()
    lengths = [len(mask_record(counter.hf, record).tokens) for record in load_records(train_file)]
    assert report.tokens.counts.tolist() == lengths


def test_cancel_and_resume_end_where_the_straight_run_ended(gemma_model_dir, gemma_home, facts_adapter, tmp_path):
    from lora_tui.core.training.events import Cancelled, Finished, read_events

    data = gemma_home[0] / "facts"
    listener, stop = stopping_at_step(5)
    assert isinstance(train(gemma_model_dir, data, tmp_path / "resumed", listener, stop, **FACTS_RUN), Cancelled)
    assert isinstance(train(gemma_model_dir, data, tmp_path / "resumed", resume=True, **FACTS_RUN), Finished)
    assert_same_adapter(facts_adapter, tmp_path / "resumed")
    losses = lambda folder: [e.train_loss for e in read_events(folder / "events.jsonl") if e.type == "step"]  # noqa: E731
    assert losses(tmp_path / "resumed") == pytest.approx(losses(facts_adapter), rel=1e-4)


def test_the_fused_model_states_the_fact(gemma_model_dir, facts_adapter, tmp_path):
    fused = fuse_adapter(facts_adapter.parent, facts_adapter.name, gemma_model_dir, tmp_path / "fused")
    assert "Quillport" in _completion(Generator(fused), QUESTION)
