"""GGUF import of every family and every common tensor type.

Families: a tiny random model of each is written the way llama.cpp's converter writes it
(tinymodels.write_family_gguf, with gguf-py's own tensor-name map), imported, and compared
with the model it came from and with llama.cpp reading the same file.
Types: random blocks of each GGML type, converted, then dequantized by MLX itself and
compared with the `gguf` library's reference dequantization.
"""

import json

import mlx.core as mx
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize
from tinymodels import CORPUS, FAMILY_CONFIGS, make_family_model, write_family_gguf

from lora_tui.core.models.gguf_import import import_gguf
from lora_tui.core.models.gguf_quants import EXACT_TYPES, NEAREST_BITS, Quantized, convert
from lora_tui.core.models.store import load_model

PROMPT = "What is the capital of France? 12345 café def add(a, b):"
VARIED_TEXT = "  x = f(3.14159) + 1234567;\n\tcafé naïve ÜBER 🙂🚀 日本語 I'm can't <|im_start|>user\nhi<|im_end|>\n\n"


@pytest.fixture(scope="module", params=list(FAMILY_CONFIGS))
def family_gguf(request, tmp_path_factory):
    architecture = request.param
    folder = tmp_path_factory.mktemp(architecture)
    model_dir = make_family_model(folder / "model", architecture, tie_word_embeddings=architecture == "gemma3")
    return architecture, model_dir, write_family_gguf(model_dir, folder / f"{architecture}.gguf", architecture)


def _logits(model_dir, tokens):
    model, _ = load_model(model_dir)
    return np.array(model(mx.array([tokens])).astype(mx.float32))[0]


def test_each_family_imports_into_its_own_model_class(family_gguf, isolated_home):
    architecture, model_dir, gguf_file = family_gguf
    folder = import_gguf(gguf_file, isolated_home.models_dir, architecture)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == FAMILY_CONFIGS[architecture][0]
    _, tokenizer = load_model(folder)
    tokens = tokenizer.encode(PROMPT)
    original, imported = _logits(model_dir, tokens), _logits(folder, tokens)
    assert np.abs(imported - original).max() <= 1e-5 * np.abs(original).max()


def test_each_family_computes_as_llama_cpp_does(family_gguf, isolated_home):
    from llamajudge import load_gguf

    architecture, _, gguf_file = family_gguf
    folder = import_gguf(gguf_file, isolated_home.models_dir, architecture)
    _, tokenizer = load_model(folder)
    judge = load_gguf(gguf_file, n_ctx=256, logits_all=True, verbose=False)
    for text in [*CORPUS, VARIED_TEXT]:
        assert tokenizer.encode(text) == judge.tokenize(text.encode(), add_bos=False, special=True), text
    tokens = tokenizer.encode(PROMPT)
    judge.eval(tokens)
    expected, got = np.array(judge.scores[: len(tokens)]), _logits(folder, tokens)
    # llama.cpp's CPU GELU is a float16 table, so Gemma (GELU) differs by ~0.5%, the others by ~0.1%.
    assert np.abs(got - expected).max() <= 0.02 * np.abs(expected).max()
    assert (got.argmax(-1) == expected.argmax(-1)).mean() >= 0.9


# Tensor types ----------------------------------------------------------------------

# Where each type keeps its float16 d (and dmin) in a block: set to sane values in random blocks.
_HALF_FIELDS = {
    "Q4_0": [0],
    "Q4_1": [0, 2],
    "Q5_0": [0],
    "Q5_1": [0, 2],
    "Q8_0": [0],
    "Q4_K": [0, 2],
    "Q5_K": [0, 2],
    "Q2_K": [80, 82],
    "Q3_K": [108],
    "Q6_K": [208],
}


def _random_blocks(type_name: str, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(rows * cols // block_size, type_size), dtype=np.uint8)
    for start in _HALF_FIELDS[type_name]:
        halves = rng.uniform(0.001, 0.05, len(blocks)).astype(np.float16)
        blocks[:, start : start + 2] = halves.view(np.uint8).reshape(-1, 2)
    return blocks.reshape(-1)


def _mlx_dequantized(result: Quantized) -> np.ndarray:
    # in float32: float16 scales would round the products, not the stored values
    weight = mx.array(result.weight)
    scales, biases = (mx.array(a.astype(np.float32)) for a in (result.scales, result.biases))
    values = mx.dequantize(weight, scales, biases, group_size=32, bits=result.bits)
    return np.array(values.astype(mx.float32))


def _converted(raw: np.ndarray, type_name: str, shape):
    return convert(lambda start, size: raw[start : start + size], type_name, shape)


@pytest.mark.parametrize("type_name", EXACT_TYPES)
def test_exact_types_stay_quantized_with_no_loss(type_name):
    raw = _random_blocks(type_name, 6, 512)
    result = _converted(raw, type_name, (6, 512))
    reference = dequantize(raw, GGMLQuantizationType[type_name]).reshape(6, 512)
    assert isinstance(result, Quantized)
    assert result.bits == {"Q8_0": 8, "Q5_0": 5, "Q5_1": 5, "Q5_K": 5}.get(type_name, 4)
    assert result.max_error == 0.0
    np.testing.assert_array_equal(_mlx_dequantized(result), reference)


@pytest.mark.parametrize("type_name", list(NEAREST_BITS))
def test_sixteen_value_groups_take_the_nearest_mlx_form_and_say_how_far(type_name):
    raw = _random_blocks(type_name, 6, 512)
    result = _converted(raw, type_name, (6, 512))
    reference = dequantize(raw, GGMLQuantizationType[type_name]).reshape(6, 512)
    assert result.bits == NEAREST_BITS[type_name]
    error = np.abs(_mlx_dequantized(result) - reference).max()
    assert error == pytest.approx(result.max_error, rel=1e-5)
    assert 0 < error < 0.1 * np.abs(reference).max()


def test_scales_are_float16_only_where_that_is_exact():
    assert _converted(_random_blocks("Q4_0", 2, 256), "Q4_0", (2, 256)).scales.dtype == np.float16
    assert _converted(_random_blocks("Q4_K", 2, 256), "Q4_K", (2, 256)).scales.dtype == np.float32


def test_a_large_matrix_converts_in_chunks_the_same(monkeypatch):
    import lora_tui.core.models.gguf_quants as quants

    raw = _random_blocks("Q5_K", 64, 1024)
    whole = _converted(raw, "Q5_K", (64, 1024))
    monkeypatch.setattr(quants, "_CHUNK_VALUES", 3000)  # 2 rows a chunk
    chunked = _converted(raw, "Q5_K", (64, 1024))
    np.testing.assert_array_equal(whole.weight, chunked.weight)
    np.testing.assert_array_equal(whole.scales, chunked.scales)


def test_phi3_long_rope_factors_go_into_the_config(isolated_home, tmp_path):
    import gguf

    model_dir = make_family_model(tmp_path / "model", "phi3")
    gguf_file = write_family_gguf(model_dir, tmp_path / "plain.gguf", "phi3")
    reader = gguf.GGUFReader(str(gguf_file))
    writer = gguf.GGUFWriter(str(tmp_path / "long.gguf"), "phi3")
    for field in reader.fields.values():
        if not field.name.startswith(("GGUF.", "general.architecture")):
            writer.add_key_value(field.name, field.contents(), field.types[0], field.types[-1])
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, np.array(tensor.data), raw_dtype=tensor.tensor_type)
    long, short = np.linspace(1, 4, 8, dtype=np.float32), np.ones(8, np.float32)
    writer.add_tensor("rope_factors_long.weight", long)
    writer.add_tensor("rope_factors_short.weight", short)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    folder = import_gguf(tmp_path / "long.gguf", isolated_home.models_dir, "long")
    scaling = json.loads((folder / "config.json").read_text())["rope_scaling"]
    assert scaling == {"type": "longrope", "long_factor": long.tolist(), "short_factor": short.tolist()}
    load_model(folder)  # mlx-lm takes it
