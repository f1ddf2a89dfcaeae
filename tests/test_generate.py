"""Streaming generation, adapter switching, and `lora-tui chat`."""

import shutil
import threading

import mlx.core as mx
import numpy as np
import pytest
from generation import complete
from trainkit import arithmetic_rows, train, write_dataset

from lora_tui.cli import main
from lora_tui.core.errors import UserError
from lora_tui.core.inference.generate import GenerationStats, Generator, Sampling, Turn

GREEDY = Sampling(temperature=0.0, max_tokens=12)


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    return Generator(tiny_model_dir)


def _logits(generator, text="What is 3 plus 3?"):
    tokens = generator.prompt_tokens([Turn("user", text)])
    return np.array(generator.model(mx.array([tokens])))


def test_streams_pieces_and_reports_speed(generator):
    stats = GenerationStats()
    pieces = list(generator.stream([Turn("user", "hello")], GREEDY, stats=stats))
    assert pieces and stats.generated_tokens >= 1 and stats.prompt_tokens > 0
    assert stats.time_to_first_token > 0 and stats.finish_reason in ("stop", "length")


def test_defaults_follow_the_guide():
    assert (Sampling().temperature, Sampling().top_p, Sampling().top_k) == (0.3, 0.9, 40)


def test_seed_makes_sampling_repeatable(generator):
    settings = Sampling(temperature=1.0, top_p=1.0, top_k=0, max_tokens=10, seed=7)
    first, _ = complete(generator, [Turn("user", "hi")], settings)
    again, _ = complete(generator, [Turn("user", "hi")], settings)
    assert first == again


def test_stop_mid_stream(generator):
    stop = threading.Event()
    stats = GenerationStats()
    pieces = []
    for piece in generator.stream(
        [Turn("user", "hello")], Sampling(temperature=1.0, max_tokens=200, seed=1), stop=stop, stats=stats
    ):
        pieces.append(piece)
        stop.set()
    assert len(pieces) == 1 and stats.finish_reason == "cancelled"


def test_system_prompt_and_history_go_through_the_template(generator):
    tokens = generator.prompt_tokens([Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c")], system="be brief")
    text = generator.tokenizer.decode(tokens)
    assert text.startswith("<|im_start|>system\nbe brief") and text.endswith("<|im_start|>assistant\n")


def test_adapter_switch_does_not_reload_the_base(generator, tiny_model_dir, tiny_adapter):
    from mlx_lm import load

    base = _logits(generator)
    generator.use_adapter(tiny_adapter)
    adapted = _logits(generator)
    reference, _ = load(str(tiny_model_dir), adapter_path=str(tiny_adapter))
    tokens = generator.prompt_tokens([Turn("user", "What is 3 plus 3?")])
    np.testing.assert_allclose(adapted, np.array(reference(mx.array([tokens]))), atol=1e-4, rtol=1e-4)
    assert np.abs(adapted - base).max() > 1e-3
    embed_before = generator.model.model.embed_tokens.weight
    generator.use_adapter(None)
    np.testing.assert_allclose(_logits(generator), base, atol=1e-5)
    assert generator.model.model.embed_tokens.weight is embed_before  # same base arrays: no reload


def test_switch_between_adapters_of_different_rank(generator, tiny_model_dir, tiny_adapter, tmp_path):
    data = write_dataset(tmp_path / "d", arithmetic_rows(8))
    other = tmp_path / "rank16"
    train(tiny_model_dir, data, other, rank=16, epochs=1)
    generator.use_adapter(tiny_adapter)
    first = _logits(generator)
    generator.use_adapter(other)
    generator.use_adapter(tiny_adapter)
    np.testing.assert_allclose(_logits(generator), first, atol=1e-5)
    generator.use_adapter(None)


def test_base_and_adapter_answer_the_same_prompt(generator, tiny_adapter):
    prompt = [Turn("user", "What is 3 plus 3?")]
    generator.use_adapter(None)
    _, base_stats = complete(generator, prompt, GREEDY)
    generator.use_adapter(tiny_adapter)
    _, adapter_stats = complete(generator, prompt, GREEDY)
    assert base_stats.generated_tokens > 0 and adapter_stats.generated_tokens > 0
    generator.use_adapter(None)


def test_adapter_of_another_base_is_refused(tiny_adapter, tmp_path):
    from tinymodels import make_tiny_model

    other_base = make_tiny_model(tmp_path / "other-base", seed=3)
    with pytest.raises(UserError, match=r"trained on .*tiny-llama.*, not on 'other-base'"):
        Generator(other_base).use_adapter(tiny_adapter)


def test_corrupt_adapter_is_one_sentence(generator, tiny_adapter, tmp_path):
    broken = shutil.copytree(tiny_adapter, tmp_path / "broken")
    (broken / "adapters.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot load"):
        generator.use_adapter(broken)
    generator.use_adapter(None)


def test_prompt_longer_than_context(generator):
    with pytest.raises(UserError, match="the model's context is 512"):
        generator.prompt_tokens([Turn("user", "word " * 600)])


def test_bad_sampling_values():
    with pytest.raises(UserError, match="top-p"):
        Sampling(top_p=0).check()


def test_chat_cli_one_prompt_and_lines(tiny_model_dir, tiny_adapter, isolated_home, capsys, monkeypatch):
    import io

    shutil.copytree(tiny_adapter, isolated_home.adapters_dir / "arith")
    args = ["chat", "--model", str(tiny_model_dir), "--adapter", "arith", "--temp", "0", "--max-tokens", "5"]
    assert main([*args, "--prompt", "What is 1 plus 1?"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() and "tok/s" in captured.err
    monkeypatch.setattr("sys.stdin", io.StringIO("first\nsecond\n"))
    assert main(args) == 0
    assert capsys.readouterr().err.count("tok/s") == 2


def test_chat_cli_errors(tiny_model_dir, isolated_home, capsys):
    assert main(["chat", "--model", str(tiny_model_dir), "--adapter", "nope", "--prompt", "x"]) == 1
    assert "No adapter named 'nope'" in capsys.readouterr().err
    assert main(["chat", "--model", str(tiny_model_dir), "--adapter", "a/b", "--prompt", "x"]) == 1
    assert "path separator" in capsys.readouterr().err
    assert main(["chat", "--model", "missing-model", "--prompt", "x"]) == 1


def test_chat_cli_takes_the_base_from_the_adapter(tiny_model_dir, tiny_adapter, isolated_home, capsys):
    shutil.copytree(tiny_adapter, isolated_home.adapters_dir / "arith")
    sampling = ["--temp", "0", "--max-tokens", "5", "--prompt", "What is 1 plus 1?"]
    assert main(["chat", "--adapter", "arith", *sampling]) == 0
    without_model = capsys.readouterr().out
    assert main(["chat", "--model", str(tiny_model_dir), "--adapter", "arith", *sampling]) == 0
    assert without_model.strip() and without_model == capsys.readouterr().out
    assert main(["chat", "--prompt", "x"]) == 1
    assert "Name a model (--model M), an adapter (--adapter NAME), or both." in capsys.readouterr().err


def test_thinking_is_off_by_default_for_a_template_with_the_switch(tmp_path):
    from familytemplates import make_chat_family_model

    generator = Generator(make_chat_family_model(tmp_path / "qwen3", "qwen3"))
    decode = generator.tokenizer.decode
    question = [Turn("user", "What is 2 + 2?")]
    assert decode(generator.prompt_tokens(question)).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert decode(generator.prompt_tokens(question, thinking=True)).endswith("<|im_start|>assistant\n")
    pieces = list(generator.stream(question, Sampling(max_tokens=3, temperature=0, thinking=True)))
    assert pieces  # a real model streams real tokens either way


def test_chat_thinking_flag_reaches_the_template(tmp_path, isolated_home, monkeypatch, capsys):
    from familytemplates import make_chat_family_model

    prompts = []
    real = Generator.prompt_tokens

    def recorded(self, history, system=None, thinking=False):
        tokens = real(self, history, system, thinking)
        prompts.append(self.tokenizer.decode(tokens))
        return tokens

    monkeypatch.setattr(Generator, "prompt_tokens", recorded)
    model = make_chat_family_model(tmp_path / "qwen3", "qwen3")
    for extra in ([], ["--thinking"]):
        args = ["chat", "--model", str(model), "--prompt", "Hi", "--max-tokens", "2", "--temp", "0", *extra]
        assert main(args) == 0
    assert prompts[0].endswith("assistant\n<think>\n\n</think>\n\n") and prompts[1].endswith("assistant\n")
    assert capsys.readouterr().out  # the replies, streamed


def test_a_base_model_chats_as_plain_completion_and_says_so(tmp_path, isolated_home, capsys):
    from familytemplates import make_chat_family_model

    model = make_chat_family_model(tmp_path / "base", "base")
    stats = GenerationStats()
    list(Generator(model).stream([Turn("user", "The capital of France is")], GREEDY, stats=stats))
    assert stats.plain_completion
    assert main(["chat", "--model", str(model), "--prompt", "The capital of France is", "--max-tokens", "2"]) == 0
    assert "no chat template: plain completion" in capsys.readouterr().err
