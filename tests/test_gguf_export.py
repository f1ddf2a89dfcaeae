"""GGUF export, judged by llama.cpp itself (llama-cpp-python): the logits it computes from our files match MLX's."""

import json

import mlx.core as mx
import numpy as np
import pytest
from llamajudge import load_gguf
from tinymodels import CORPUS, FAMILY_CONFIGS, make_family_model, make_tiny_model
from trainkit import arithmetic_rows, train, write_dataset

from lora_tui.cli import main
from lora_tui.core.adapters.gguf_export import export_gguf, export_lora_gguf
from lora_tui.core.errors import UserError
from lora_tui.core.inference.generate import Generator
from lora_tui.core.training.params import TARGET_MODULES

PROMPT = CORPUS[1] + " " + CORPUS[3]


def llama_cpp_logits(gguf_file, tokens: list[int], lora=None) -> np.ndarray:
    model = load_gguf(
        gguf_file,
        n_ctx=256,
        logits_all=True,
        verbose=False,
        n_threads=2,
        lora_path=str(lora) if lora else None,
        type_k=0,
        type_v=0,  # a float32 KV cache (GGML_TYPE_F32): compare arithmetic, not cache rounding
    )
    try:
        assert model.tokenize(PROMPT.encode(), add_bos=False, special=False) == tokens  # the same tokenizer
        model.eval(tokens)
        return np.array(model.scores[: len(tokens)])
    finally:
        model.close()


def mlx_logits(model_dir, tokens: list[int], adapter=None) -> np.ndarray:
    generator = Generator(model_dir)
    generator.use_adapter(adapter)
    return np.array(generator.model(mx.array([tokens]))[0].astype(mx.float32))


@pytest.fixture(scope="module", params=list(FAMILY_CONFIGS))
def tiny(request, tmp_path_factory):
    # Not named after its family: llama.cpp applies Phi-3's vocabulary rules to a model *named* phi3.
    return make_family_model(tmp_path_factory.mktemp(request.param) / "tiny", request.param)


@pytest.fixture(scope="module")
def tiny_with_adapter(tiny, tmp_path_factory):
    """The tiny model and an adapter trained on it, on every projection (so Q and K rows are permuted too)."""
    root = tmp_path_factory.mktemp("adapter")
    data = write_dataset(root / "data", arithmetic_rows(16))
    outcome = train(tiny, data, root / "adapter", epochs=2, learning_rate=5e-3, target_modules=list(TARGET_MODULES))
    assert outcome.type == "finished"
    return tiny, root / "adapter"


@pytest.mark.parametrize(("type_name", "tolerance"), [("f32", 1e-3), ("f16", 2e-2), ("q8_0", 0.15)])
def test_llama_cpp_computes_the_logits_mlx_does(tiny, tmp_path, type_name, tolerance):
    gguf_file = export_gguf(tiny, tmp_path / f"tiny-{type_name}.gguf", type_name=type_name)
    tokens = Generator(tiny).tokenizer.encode(PROMPT)
    expected = mlx_logits(tiny, tokens)
    got = llama_cpp_logits(gguf_file, tokens)
    slack = llama_cpp_slack(tiny)
    scale = np.abs(expected).max()
    if type_name == "q8_0":
        # llama.cpp rounds activations to 8 bits for q8_0 products; in a random model a few logits
        # move far. Most must not, and the most likely token must mostly agree (near-ties aside).
        assert np.percentile(np.abs(got - expected), 99.9) <= tolerance * slack * scale
        assert (got.argmax(-1) == expected.argmax(-1)).mean() >= 0.9 - 0.05 * slack
    else:
        np.testing.assert_allclose(got, expected, atol=tolerance * slack * scale)


def llama_cpp_slack(model_dir) -> float:
    """How much further llama.cpp may be from MLX for this family: Gemma's GELU is a float16 table in
    llama.cpp's CPU code (0.1-0.3% apart on the logits even in f32, and one logit in 24K 0.43% apart with
    llama-cpp-python 0.3.36, on the code of stop 32 too); the others compute alike."""
    return 4.5 if json.loads((model_dir / "config.json").read_text())["model_type"] == "gemma3_text" else 1.0


def test_an_adapter_merged_in_or_as_a_lora_file_gives_the_adapters_logits(tiny_with_adapter, tmp_path):
    model_dir, adapter = tiny_with_adapter
    tokens = Generator(model_dir).tokenizer.encode(PROMPT)
    with_adapter, base = mlx_logits(model_dir, tokens, adapter), mlx_logits(model_dir, tokens)
    tolerance = 1e-3 * llama_cpp_slack(model_dir) * np.abs(base).max()
    assert not np.allclose(with_adapter, base, atol=10 * tolerance)  # the adapter changes the answer ...
    merged = export_gguf(model_dir, tmp_path / "merged.gguf", adapter, "f32")
    np.testing.assert_allclose(llama_cpp_logits(merged, tokens), with_adapter, atol=tolerance)  # ... fused
    base_file = export_gguf(model_dir, tmp_path / "base.gguf", None, "f32")
    lora_file = export_lora_gguf(adapter, model_dir, tmp_path / "lora.gguf")
    np.testing.assert_allclose(llama_cpp_logits(base_file, tokens, lora_file), with_adapter, atol=tolerance)


def test_the_file_carries_the_chat_template_and_special_tokens(tiny_model_dir, tmp_path):
    import gguf

    reader = gguf.GGUFReader(str(export_gguf(tiny_model_dir, tmp_path / "t.gguf")))
    config = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    assert reader.fields["tokenizer.chat_template"].contents() == config["chat_template"]
    assert reader.fields["tokenizer.ggml.eos_token_id"].contents() == 2  # <|im_end|>


def test_refusals_are_one_clear_sentence(tiny_model_dir, tmp_path):
    existing = tmp_path / "there.gguf"
    existing.write_bytes(b"mine")
    with pytest.raises(UserError, match="already exists; choose another --out, or --overwrite"):
        export_gguf(tiny_model_dir, existing)
    assert existing.read_bytes() == b"mine"
    with pytest.raises(UserError, match="is not one lora-tui writes"):
        export_gguf(tiny_model_dir, tmp_path / "x.gguf", type_name="q3")
    other = make_tiny_model(tmp_path / "gemma")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "gemma"}))
    with pytest.raises(UserError, match=r"supports the llama .* gemma3 and phi3 architectures; this model is 'gemma'"):
        export_gguf(other, tmp_path / "g.gguf")


def test_the_cli_exports_an_adapter_and_a_model(tiny_model_dir, tiny_adapter, isolated_home, tmp_path, capsys):
    import shutil

    shutil.copytree(tiny_adapter, isolated_home.adapters_dir / "arith")
    assert (
        main(["adapters", "export", "arith", "--format", "gguf", "--type", "q8_0", "--out", str(tmp_path / "a.gguf")])
        == 0
    )
    assert (tmp_path / "a.gguf").is_file()
    assert main(["adapters", "export", "arith", "--format", "gguf", "--out", str(tmp_path / "a.gguf")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["models", "export", str(tiny_model_dir), "--type", "q4_k_m", "--out", str(tmp_path / "m.gguf")]) == 0
    captured = capsys.readouterr()
    assert f"llama-quantize {tmp_path / 'm.f16.gguf'} {tmp_path / 'm.gguf'} Q4_K_M" in captured.err
    assert (tmp_path / "m.f16.gguf").is_file()
    assert main(["adapters", "export", "arith", "--format", "gguf-lora", "--out", str(tmp_path / "l.gguf")]) == 0
    assert f"Use it: llama-cli -m tiny-llama.gguf --lora {tmp_path / 'l.gguf'}" in capsys.readouterr().err


@pytest.fixture
def installed_adapter(tiny_model_dir, isolated_home, tmp_path):
    """An adapter in the store trained on chat records that all share one system prompt."""
    rows = [
        {"messages": [{"role": "system", "content": "Answer in French."}, *row["messages"]]}
        for row in arithmetic_rows(8)
    ]
    outcome = train(tiny_model_dir, write_dataset(tmp_path / "data", rows), isolated_home.adapters_dir / "french")
    assert outcome.type == "finished"
    return isolated_home.adapters_dir / "french"


def test_an_ollama_folder_has_the_model_a_modelfile_and_a_card(installed_adapter, tmp_path, capsys):
    out = tmp_path / "french-ollama"
    assert main(["adapters", "export", "french", "--format", "ollama", "--out", str(out)]) == 0
    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./model.gguf\n")
    assert 'TEMPLATE """{{ if .System }}<|im_start|>system' in modelfile  # the tiny model chats in ChatML
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and "PARAMETER temperature 0.3" in modelfile
    assert 'SYSTEM """Answer in French."""' in modelfile
    assert f"ollama create french -f {out / 'Modelfile'}" in capsys.readouterr().err
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and "library_name: gguf" in card and "| rank | 8 |" in card
    model = load_gguf(out / "model.gguf", n_ctx=64, verbose=False)  # llama.cpp loads what Ollama would
    assert model.n_vocab() > 0
    model.close()


def test_an_ollama_folder_can_keep_the_adapter_apart(installed_adapter, tmp_path):
    out = tmp_path / "apart"
    assert main(["adapters", "export", "french", "--format", "ollama", "--lora", "--out", str(out)]) == 0
    assert (out / "Modelfile").read_text().startswith("FROM ./base.gguf\nADAPTER ./adapter.gguf\n")
    assert {p.name for p in out.iterdir()} == {"Modelfile", "README.md", "base.gguf", "adapter.gguf"}


def test_lm_studio_gets_the_merged_mlx_model_with_a_card(installed_adapter, tmp_path, tiny_model_dir):
    out = tmp_path / "lmstudio" / "lora-tui" / "french"
    assert main(["adapters", "export", "french", "--format", "lmstudio", "--out", str(out)]) == 0
    tokens = Generator(tiny_model_dir).tokenizer.encode(PROMPT)
    np.testing.assert_allclose(
        mlx_logits(out, tokens), mlx_logits(tiny_model_dir, tokens, installed_adapter), atol=1e-3
    )
    assert "library_name: mlx" in (out / "README.md").read_text()


def test_adapter_config_carries_alpha_and_mlx_lm_still_loads_it(installed_adapter, tiny_model_dir):
    from mlx_lm import load

    lora = json.loads((installed_adapter / "adapter_config.json").read_text())["lora_parameters"]
    assert lora["alpha"] == lora["scale"] * lora["rank"] == 16.0
    load(str(tiny_model_dir), adapter_path=str(installed_adapter))


def test_dora_adapters_are_refused_as_lora_files(tiny_model_dir, tmp_path):
    outcome = train(
        tiny_model_dir, write_dataset(tmp_path / "data", arithmetic_rows(8)), tmp_path / "dora", fine_tune_type="dora"
    )
    assert outcome.type == "finished"
    with pytest.raises(UserError, match=r"llama\.cpp has no DORA: export it fused"):
        export_lora_gguf(tmp_path / "dora", tiny_model_dir, tmp_path / "dora.gguf")
    export_gguf(tiny_model_dir, tmp_path / "dora-fused.gguf", tmp_path / "dora")  # fused works for DoRA


def test_a_sentencepiece_tokenizer_is_written_as_llama_cpp_reads_it(tmp_path):
    """Llama 2 and Mistral tokenize with SentencePiece-style BPE (byte fallback): llama.cpp must split as they do."""
    from test_sentencepiece_tokenizer import _sentencepiece_metadata

    from lora_tui.core.models.gguf_tokenizer import build_tokenizer

    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    model_dir = make_tiny_model(
        tmp_path / "spm", tokenizer=build_tokenizer(_sentencepiece_metadata()), tokenizer_config=special
    )
    gguf_file = export_gguf(model_dir, tmp_path / "spm.gguf", type_name="f32")
    text = "hello world hi! hello"
    tokens = Generator(model_dir).tokenizer.encode(text)  # with <s> first, as the tokenizer adds it
    model = load_gguf(gguf_file, n_ctx=64, logits_all=True, verbose=False, type_k=0, type_v=0)
    assert model.tokenize(text.encode(), add_bos=True, special=False) == tokens
    model.eval(tokens)
    expected = mlx_logits(model_dir, tokens)
    np.testing.assert_allclose(np.array(model.scores[: len(tokens)]), expected, atol=1e-3 * np.abs(expected).max())
    model.close()


# An export checks itself in llama.cpp ------------------------------------------------


def test_an_export_is_read_back_in_llama_cpp_and_says_how_far_it_agrees(installed_adapter, tmp_path, capsys):
    out = tmp_path / "checked.gguf"
    assert main(["adapters", "export", "french", "--format", "gguf", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("Checked in llama.cpp"))
    agreement = int(line.split(" at ")[1].split("%")[0])
    assert agreement >= 80 and "held-out prompts" in line
    assert (
        main(["adapters", "export", "french", "--format", "gguf", "--out", str(tmp_path / "b.gguf"), "--no-verify"])
        == 0
    )
    assert "Checked in llama.cpp" not in capsys.readouterr().err


def test_the_ollama_card_says_how_the_file_was_checked(installed_adapter, tmp_path):
    out = tmp_path / "carded"
    assert main(["adapters", "export", "french", "--format", "ollama", "--out", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert "## Checked in llama.cpp\n\nChecked in llama.cpp: it picks the token MLX picks at" in card


def test_a_file_that_behaves_otherwise_is_an_error_and_is_not_left(installed_adapter, tmp_path, monkeypatch, capsys):
    import lora_tui.core.adapters.exports as exports

    stranger = make_tiny_model(tmp_path / "stranger", seed=7)  # same tokenizer, other weights

    def wrong_export(model_path, out, *args, **kwargs):
        return export_gguf(stranger, out, None, "f32")

    monkeypatch.setattr(exports, "export_gguf", wrong_export)
    out = tmp_path / "wrong.gguf"
    assert main(["adapters", "export", "french", "--format", "gguf", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"lora-tui: {out} does not behave as the adapter does in MLX: llama.cpp picks the same next token" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_sigterm_during_an_export_leaves_no_temp_file(tiny_adapter, isolated_home, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    shutil.copytree(tiny_adapter, isolated_home.adapters_dir / "arith")
    slow_writer = (
        "import sys, time, gguf\n"
        "write = gguf.GGUFWriter.write_tensors_to_file\n"
        "gguf.GGUFWriter.write_tensors_to_file = lambda self, *a, **k: (time.sleep(60), write(self, *a, **k))\n"
        "from lora_tui.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = tmp_path / "exports"
    out.mkdir()
    command = [sys.executable, "-c", slow_writer, "adapters", "export", "arith", "--format", "gguf"]
    process = subprocess.Popen(
        [*command, "--out", str(out / "a.gguf")], stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    deadline = time.monotonic() + 120
    while not list(out.glob(".a.gguf.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(out.glob(".a.gguf.*.tmp")), "the export never started writing"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "lora-tui: interrupted" in err and "Traceback" not in err
    assert list(out.iterdir()) == []
