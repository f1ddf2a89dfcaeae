"""GGUF import: each supported tensor type, proven against an independent
dequantization by the `gguf` package; and every kind of bad file refused cleanly."""

import json
import re
import struct

import mlx.core as mx
import numpy as np
import pytest
from tinymodels import CORPUS, reference_logits, write_gguf

from lora_tui.core.errors import UserError
from lora_tui.core.models.gguf import read_gguf
from lora_tui.core.models.gguf_import import import_gguf
from lora_tui.core.models.store import load_model

PROMPT = "What is the capital of France? 12345 🙂 café"


@pytest.fixture
def models_dir(isolated_home):
    return isolated_home.models_dir


@pytest.mark.parametrize(
    ("matrix_type", "embedding_type", "tolerance"),
    [
        ("Q4_0", None, 0.01),
        ("Q4_1", "Q8_0", 0.01),
        ("Q8_0", None, 0.01),
        ("F16", None, 1e-5),
        ("BF16", None, 1e-5),
        ("F32", None, 1e-5),
    ],
)
def test_import_matches_independent_dequantization(
    tiny_model_dir, tmp_path, models_dir, matrix_type, embedding_type, tolerance
):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / f"tiny-{matrix_type}.gguf", matrix_type, embedding_type)
    folder = import_gguf(gguf_file, models_dir, "tiny")
    model, tokenizer = load_model(folder)
    config = json.loads((folder / "config.json").read_text())
    tokens = tokenizer.encode(PROMPT)

    got = np.array(model(mx.array([tokens])).astype(mx.float32))
    expected = reference_logits(gguf_file, config, tokens)

    assert np.abs(got - expected).max() <= tolerance * np.abs(expected).max()
    assert (got.argmax(-1) == expected.argmax(-1)).mean() > 0.9


def test_quantized_tensors_stay_quantized(tiny_model_dir, tmp_path, models_dir):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "mixed.gguf", "Q4_1", "Q8_0")
    folder = import_gguf(gguf_file, models_dir, "mixed")
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"] == {"group_size": 32, "bits": 4, "model.embed_tokens": {"group_size": 32, "bits": 8}}
    weights = mx.load(str(folder / "model.safetensors"))
    assert weights["model.layers.0.mlp.up_proj.weight"].dtype == mx.uint32
    assert weights["model.norm.weight"].dtype == mx.float32


def test_bf16_stays_bf16(tiny_model_dir, tmp_path, models_dir):
    folder = import_gguf(write_gguf(tiny_model_dir, tmp_path / "bf16.gguf", "BF16"), models_dir, "bf16")
    weights = mx.load(str(folder / "model.safetensors"))
    assert weights["model.layers.1.self_attn.o_proj.weight"].dtype == mx.bfloat16


def test_tokenizer_and_chat_template_rebuilt(tiny_model_dir, tmp_path, models_dir):
    from tokenizers import Tokenizer

    folder = import_gguf(write_gguf(tiny_model_dir, tmp_path / "t.gguf", "Q8_0"), models_dir, "tok")
    original = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    rebuilt = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in [*CORPUS, "  runs   of\tspace\n\n", "<|im_start|>user\nhi<|im_end|>"]:
        assert rebuilt.encode(text).ids == original.encode(text).ids
    _, tokenizer = load_model(folder)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_default_name_comes_from_file_name(tiny_model_dir, tmp_path, models_dir):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "My.Model.Q4_0.gguf", "Q4_0")
    assert import_gguf(gguf_file, models_dir).name == "My-Model-Q4_0"


# Bad input ------------------------------------------------------------------------


def _refused(gguf_file, models_dir, match, name="bad"):
    with pytest.raises(UserError, match=match) as error:
        import_gguf(gguf_file, models_dir, name)
    assert not models_dir.exists() or [p for p in models_dir.iterdir() if p.suffix != ".lock"] == []
    return str(error.value)


def test_truncated_file(tiny_model_dir, tmp_path, models_dir):
    whole = write_gguf(tiny_model_dir, tmp_path / "whole.gguf", "Q4_0").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) - 1000])
    message = _refused(cut, models_dir, "extends past the end of the file")
    assert str(cut) in message


def test_file_cut_inside_header(tiny_model_dir, tmp_path, models_dir):
    cut = tmp_path / "header.gguf"
    cut.write_bytes(write_gguf(tiny_model_dir, tmp_path / "w.gguf", "Q4_0").read_bytes()[:200])
    _refused(cut, models_dir, "ends inside its header")


def test_not_a_gguf_file(tmp_path, models_dir):
    fake = tmp_path / "notes.gguf"
    fake.write_text("just some text that is long enough to read a header from")
    _refused(fake, models_dir, "not a GGUF file")


def test_unsupported_architecture(tiny_model_dir, tmp_path, models_dir):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "falcon.gguf", "Q4_0", architecture="falcon")
    message = _refused(gguf_file, models_dir, "architecture 'falcon' is not supported")
    assert "llama, qwen2, qwen3, gemma3, phi3" in message


def test_mislabelled_architecture(tiny_model_dir, tmp_path, models_dir):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "llama-as-phi3.gguf", "Q4_0", architecture="phi3")
    message = _refused(gguf_file, models_dir, "do not make a phi3 model")
    assert "missing model.layers.0.mlp.gate_up_proj.weight" in message or "qkv_proj" in message


def test_unsupported_tensor_type(tiny_model_dir, tmp_path, models_dir):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "iq4.gguf", "IQ4_NL")
    message = _refused(gguf_file, models_dir, "has type IQ4_NL, which is not supported")
    assert re.search(r"tensor '[\w.]+\.weight'", message)


def test_name_with_path_separator(tiny_model_dir, tmp_path, models_dir):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "ok.gguf", "Q4_0")
    _refused(gguf_file, models_dir, "path separator", name="../escape")
    _refused(gguf_file, models_dir, "path separator", name="a/b")


def test_existing_name_is_not_overwritten(tiny_model_dir, tmp_path, models_dir):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "ok.gguf", "Q4_0")
    first = import_gguf(gguf_file, models_dir, "taken")
    before = (first / "model.safetensors").stat().st_mtime_ns
    with pytest.raises(UserError, match="already exists"):
        import_gguf(gguf_file, models_dir, "taken")
    assert (first / "model.safetensors").stat().st_mtime_ns == before


def test_header_reader_reports_types_and_shapes(tiny_model_dir, tmp_path):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "h.gguf", "Q4_1", "Q8_0")
    header = read_gguf(gguf_file)
    assert header.metadata["general.architecture"] == "llama"
    embedding = header.tensor("token_embd.weight")
    assert embedding.type_name == "Q8_0"
    assert embedding.shape[1] == 64
    assert header.tensor("blk.0.ffn_up.weight").type_name == "Q4_1"
    # The magic and version are where the spec puts them.
    assert gguf_file.read_bytes()[:4] == b"GGUF"
    assert struct.unpack("<I", gguf_file.read_bytes()[4:8])[0] == header.version


def test_too_little_room_is_refused_before_anything_is_converted(tiny_model_dir, tmp_path, models_dir, monkeypatch):
    import collections

    import lora_tui.core.models.gguf_import as gguf_import

    gguf_file = write_gguf(tiny_model_dir, tmp_path / "room.gguf", "Q8_0")
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(gguf_import.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    monkeypatch.setattr(gguf_import, "convert", lambda *a: pytest.fail("a tensor was converted"))
    message = _refused(gguf_file, models_dir, "the MLX model needs about")
    assert "has 1.0 KB free; make room and import again" in message


def test_a_disk_that_fills_while_writing_is_one_sentence_and_leaves_nothing(
    tiny_model_dir, tmp_path, models_dir, monkeypatch
):
    import mlx.core as mx

    gguf_file = write_gguf(tiny_model_dir, tmp_path / "full.gguf", "Q8_0")

    def full_disk(*args, **kwargs):
        raise RuntimeError("[write] Unable to write 11560 bytes to file.")

    monkeypatch.setattr(mx, "save_safetensors", full_disk)
    _refused(gguf_file, models_dir, "the disk filled while writing the MLX model .* free\\); nothing was left behind")


def test_an_unsupported_file_is_refused_from_its_header_alone(tiny_model_dir, tmp_path, models_dir, monkeypatch):
    from lora_tui.core.models.gguf import GGUFFile

    gguf_file = write_gguf(tiny_model_dir, tmp_path / "falcon.gguf", "Q8_0", architecture="falcon")
    monkeypatch.setattr(GGUFFile, "reader", lambda *a: pytest.fail("a tensor was read"))
    _refused(gguf_file, models_dir, "architecture 'falcon' is not supported")


def test_an_end_of_turn_token_stops_generation_as_eos_does(tiny_model_dir, tmp_path, models_dir):
    gguf_file = write_gguf(tiny_model_dir, tmp_path / "eot.gguf", "Q8_0", eot_token_id=1)  # <|im_start|>, for the test
    folder = import_gguf(gguf_file, models_dir, "eot")
    assert json.loads((folder / "config.json").read_text())["eos_token_id"] == [2, 1]
    _, tokenizer = load_model(folder)
    assert tokenizer.eos_token_ids == {1, 2}
