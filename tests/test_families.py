"""One matrix over the families users bring: each a tiny random model with its own chat template
(tests/familytemplates.py), taken through what a run does: exact token counts, training on every
assistant turn, cancel and resume, eval, streaming chat, and a GGUF export judged by llama.cpp.

Each family trains one adapter, shared by the tests after it.
"""

import json

import mlx.core as mx
import numpy as np
import pytest
from familytemplates import FAMILIES, make_chat_family_model
from trainkit import assert_same_adapter, stopping_at_step, train, write_dataset

from lora_tui.core.adapters.convert import fuse_adapter
from lora_tui.core.adapters.gguf_export import export_gguf
from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.masks import mask_record
from lora_tui.core.data.records import load_records
from lora_tui.core.data.tokens import load_token_counter
from lora_tui.core.errors import UserError
from lora_tui.core.evaluation.run import evaluate
from lora_tui.core.inference.generate import Generator, Sampling, Turn
from lora_tui.core.training.events import Cancelled, Finished, read_events


def conversations(count: int, multi_turn: bool) -> list[dict]:
    rows = []
    for i in range(count):
        turns = [
            {"role": "user", "content": f"What is {i} plus {i}?"},
            {"role": "assistant", "content": f"It is {2 * i}."},
        ]
        if multi_turn:
            turns += [{"role": "user", "content": "And doubled?"}, {"role": "assistant", "content": f"{4 * i}."}]
        rows.append({"messages": turns})
    return rows


def rows_for(family: str) -> list[dict]:
    if FAMILIES[family]["template"] is None:  # a base model: prompt/completion, read as a continuation
        return [{"prompt": f"Q: {i} plus {i}?\nA:", "completion": f" {2 * i}."} for i in range(12)]
    return conversations(12, multi_turn=True)


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, tmp_path_factory):
    """(name, model, data, adapter): a model of the family and an adapter trained on it straight through."""
    root = tmp_path_factory.mktemp(request.param)
    model = make_chat_family_model(root / "model", request.param)
    data = write_dataset(root / "data", rows_for(request.param), rows_for(request.param)[:4])
    outcome = train(model, data, root / "straight", **RUN)
    assert isinstance(outcome, Finished), outcome
    return request.param, model, data, root / "straight"


RUN = {"epochs": 2, "batch_size": 2, "learning_rate": 5e-3, "steps_per_eval": 3, "seed": 3}


def test_data_check_counts_exactly_the_tokens_that_train(family):
    _, model, data, _ = family
    counter = load_token_counter(model)
    report = check_dataset(data / "train.jsonl", counter)
    assert report.ok, report.describe()
    from mlx_lm import load

    tokenizer = load(str(model))[1]
    lengths = [len(mask_record(tokenizer, r).tokens) for r in load_records(data / "train.jsonl")]
    assert report.tokens.counts.tolist() == lengths


def test_every_turn_trains_and_the_loss_falls(family):
    _, _, _, adapter = family
    steps = [e for e in read_events(adapter / "events.jsonl") if e.type == "step"]
    assert steps[-1].train_loss < steps[0].train_loss
    started = next(e for e in read_events(adapter / "events.jsonl") if e.type == "started")
    assert started.adapted  # where the LoRA went, said before the first step


def test_cancel_and_resume_end_where_a_straight_run_ends(family, tmp_path):
    _, model, data, straight = family
    listener, stop = stopping_at_step(4)
    assert isinstance(train(model, data, tmp_path / "resumed", listener=listener, stop=stop, **RUN), Cancelled)
    assert isinstance(train(model, data, tmp_path / "resumed", resume=True, **RUN), Finished)
    assert_same_adapter(straight, tmp_path / "resumed")
    losses = lambda folder: [e.train_loss for e in read_events(folder / "events.jsonl") if e.type == "step"]  # noqa: E731
    np.testing.assert_allclose(losses(straight), losses(tmp_path / "resumed"), rtol=1e-4)


def test_eval_and_streaming_chat_run_on_the_adapter(family):
    _, model, data, adapter = family
    records = load_records(data / "valid.jsonl")
    result = evaluate(model, records, [("base", None), ("adapter", adapter)], max_tokens=4)
    base, tuned = (side.mean_loss() for side in result.sides)
    assert tuned < base  # trained on the same kind of answers
    generator = Generator(model)
    generator.use_adapter(adapter)
    question = [Turn("user", "What is 3 plus 3?")]
    pieces = list(generator.stream(question, Sampling(temperature=0, max_tokens=6)))
    assert pieces and all(isinstance(piece, str) for piece in pieces)


def test_gguf_export_is_read_by_llama_cpp_with_the_adapters_logits(family, tmp_path):
    name, model, _, adapter = family
    if json.loads((model / "config.json").read_text())["model_type"] == "qwen3_moe":
        with pytest.raises(UserError, match=r": GGUF export supports the .* this model is 'qwen3_moe'\.$"):
            export_gguf(model, tmp_path / "model.gguf", adapter, type_name="f32")
        return
    from llamajudge import load_gguf

    path = export_gguf(model, tmp_path / "model.gguf", adapter, type_name="f32")
    generator = Generator(model)
    generator.use_adapter(adapter)
    tokens = generator.prompt_tokens([Turn("user", "What is 3 plus 3?")])
    expected = np.array(generator.model(mx.array([tokens]))[0].astype(mx.float32))
    judge = load_gguf(path, n_ctx=128, logits_all=True, verbose=False, n_threads=2, type_k=0, type_v=0)
    try:
        judge.eval(tokens)
        got = np.array(judge.scores[: len(tokens)])
    finally:
        judge.close()
    slack = 4.5 if name == "gemma3" else 1.0  # llama.cpp's float16 GELU table (test_gguf_export.py)
    np.testing.assert_allclose(got, expected, atol=1e-3 * slack * max(1.0, float(np.abs(expected).max())))


def test_the_fused_model_computes_what_base_and_adapter_do_and_keeps_the_template(family, tmp_path):
    _, model, _, adapter = family
    fused = fuse_adapter(adapter.parent, adapter.name, model, tmp_path / "fused")
    with_adapter, alone = Generator(model), Generator(fused)
    with_adapter.use_adapter(adapter)
    tokens = with_adapter.prompt_tokens([Turn("user", "What is 3 plus 3?")])
    assert alone.prompt_tokens([Turn("user", "What is 3 plus 3?")]) == tokens  # the same chat template
    logits = lambda g: np.array(g.model(mx.array([tokens]))[0].astype(mx.float32))  # noqa: E731
    np.testing.assert_allclose(logits(alone), logits(with_adapter), atol=1e-4, rtol=1e-4)


def test_a_family_mlx_lm_cannot_load_is_refused_in_one_sentence_before_anything_is_written(
    tiny_model_dir, isolated_home, tmp_path, capsys
):
    import shutil

    from lora_tui.cli import main

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "model_type": "llama9000"}))
    data = write_dataset(tmp_path / "data", rows_for("llama"))
    assert main(["train", "--model", str(model), "--data", str(data), "--name", "new"]) == 1
    error = capsys.readouterr().err.strip()
    assert "mlx-lm has no model class for the 'llama9000' family" in error and error.count("\n") == 0
    assert not (isolated_home.adapters_dir / "new").exists()
