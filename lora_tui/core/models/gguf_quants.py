"""GGML tensor types as MLX arrays: quantized blocks kept quantized wherever MLX can hold them exactly.

An MLX affine-quantized matrix stores, per group of 32 values along a row,
`value = scale * level + bias` with levels of 2-8 bits packed little-endian
into uint32 words. Many GGML blocks are exactly that:

| GGML  | block                                   | MLX form                        |
|-------|-----------------------------------------|---------------------------------|
| Q4_0  | d * (q - 8), q 4-bit                    | 4-bit, scale d, bias -8d        |
| Q4_1  | d * q + m                               | 4-bit, scale d, bias m          |
| Q5_0  | d * (q - 16), q 5-bit                   | 5-bit                           |
| Q5_1  | d * q + m                               | 5-bit                           |
| Q8_0  | d * q, q signed 8-bit                   | 8-bit, levels q + 128           |
| Q4_K  | 8 groups of 32: d*sc * q - dmin*m       | 4-bit, scale d*sc, bias -dmin*m |
| Q5_K  | as Q4_K with 5-bit levels               | 5-bit                           |

Q2_K, Q3_K and Q6_K scale groups of 16 values, which MLX cannot (its smallest
group is 32): they are dequantized (by the `gguf` library, llama.cpp's own
reference) and quantized again by MLX at the bits given in NEAREST_BITS, and
the largest error this introduces is reported. F32, F16 and BF16 stay floats.

Scales are float16 where that is exact (d and m are float16 in GGML) and float32
where it is not (a k-quant's d*sc has more bits than float16 holds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize

GROUP_SIZE = 32  # MLX's smallest quantization group; GGML's 32-value blocks and k-quant sub-blocks match it
FLOAT_TYPES = ("F32", "F16", "BF16")
EXACT_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K")
NEAREST_BITS = {"Q2_K": 4, "Q3_K": 4, "Q6_K": 8}
SUPPORTED_TYPES = FLOAT_TYPES + EXACT_TYPES + tuple(NEAREST_BITS)
_CHUNK_VALUES = 1 << 22  # rows are decoded in chunks of about this many values, to bound temporary memory


@dataclass
class Quantized:
    """An MLX affine-quantized matrix as numpy arrays: packed levels, scales and biases per group of 32."""

    weight: np.ndarray  # uint32, (rows, cols * bits / 32)
    scales: np.ndarray  # (rows, cols / 32)
    biases: np.ndarray
    bits: int
    max_error: float = 0.0  # against llama.cpp's dequantization; 0 where the form is exact

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape[0], self.weight.shape[1] * 32 // self.bits

    def dequantize(self) -> np.ndarray:
        levels = unpack_levels(self.weight, self.bits, self.shape[1]).reshape(self.shape[0], -1, GROUP_SIZE)
        values = levels * self.scales[..., None].astype(np.float32) + self.biases[..., None].astype(np.float32)
        return values.reshape(self.shape)


def mlx_bytes(type_name: str, shape: tuple[int, ...], float32_scales: bool = False) -> int:
    """The bytes a tensor of this GGML type and shape takes in its MLX form."""
    count = int(np.prod(shape, dtype=np.int64))
    if type_name in FLOAT_TYPES:
        return count * (4 if type_name == "F32" else 2)
    if len(shape) != 2:
        return count * 4
    bits = NEAREST_BITS.get(type_name) or _EXACT_BITS[type_name]
    scale_bytes = 4 if float32_scales or type_name in ("Q4_K", "Q5_K", *NEAREST_BITS) else 2
    return count * bits // 8 + (count // GROUP_SIZE) * 2 * scale_bytes


def convert(read: Callable[[int, int], np.ndarray], type_name: str, shape: tuple[int, ...]) -> Quantized | np.ndarray:
    """The MLX form of a tensor whose GGML bytes `read(start, size)` gives: Quantized for a quantized matrix,
    else floats. A matrix is read and converted a few million values at a time, into arrays made once."""
    block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    nbytes = int(np.prod(shape, dtype=np.int64)) // block_size * type_size
    if type_name in FLOAT_TYPES:
        return _floats(read(0, nbytes), type_name, shape)
    if len(shape) != 2:  # a quantized vector (rare): MLX quantizes matrices only
        return dequantize(read(0, nbytes), GGMLQuantizationType[type_name]).reshape(shape).astype(np.float32)
    if type_name in NEAREST_BITS:
        return _nearest(read(0, nbytes), type_name, shape)
    rows, cols = shape
    bits = _EXACT_BITS[type_name]
    weight = np.empty((rows, cols * bits // 32), np.uint32)
    scales, biases = (np.empty((rows, cols // GROUP_SIZE), np.float32) for _ in range(2))
    row_bytes, chunk_rows = nbytes // rows, max(1, _CHUNK_VALUES // cols)
    for start in range(0, rows, chunk_rows):
        end = min(rows, start + chunk_rows)
        raw = read(start * row_bytes, (end - start) * row_bytes)
        weight[start:end], scales[start:end], biases[start:end] = _exact(raw, type_name, cols)
    return Quantized(weight, *_narrowest_float(scales, biases), bits)


def _floats(raw: np.ndarray, type_name: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}[type_name]
    return np.asarray(raw).view(dtype).reshape(shape)  # BF16 as its raw bits; the caller views it as bfloat16


def _nearest(raw: np.ndarray, type_name: str, shape: tuple[int, int]) -> Quantized:
    import mlx.core as mx

    values = dequantize(raw, GGMLQuantizationType[type_name]).reshape(shape).astype(np.float32)
    bits = NEAREST_BITS[type_name]
    weight, scales, biases = (np.array(a) for a in mx.quantize(mx.array(values), group_size=GROUP_SIZE, bits=bits))
    result = Quantized(weight, scales, biases, bits)
    result.max_error = float(np.abs(result.dequantize() - values).max())
    return result


# Exact conversions: each returns (levels 0..2**bits-1, scale, bias), one scale and bias per group of 32.


def _exact(raw: np.ndarray, type_name: str, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    blocks = np.asarray(raw).reshape(-1, type_size)
    levels, scales, biases = _DECODERS[type_name](blocks)
    rows = len(blocks) * block_size // cols
    bits = _EXACT_BITS[type_name]
    packed = pack_levels(levels.reshape(rows, cols), bits)
    return packed, scales.reshape(rows, -1), biases.reshape(rows, -1)


def _half(blocks: np.ndarray, start: int) -> np.ndarray:
    return blocks[:, start : start + 2].copy().view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """A 32-value block's 16 bytes: low nibbles are values 0-15, high nibbles 16-31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _q4_0(blocks):
    d = _half(blocks, 0)
    return _nibbles(blocks[:, 2:18]), d, -8 * d


def _q4_1(blocks):
    return _nibbles(blocks[:, 4:20]), _half(blocks, 0), _half(blocks, 2)


def _fifth_bits(qh: np.ndarray) -> np.ndarray:
    """Q5_0/Q5_1's 32 high bits (a little-endian uint32), one per value, as 0 or 16."""
    return np.unpackbits(qh, axis=-1, bitorder="little") << 4


def _q5_0(blocks):
    d = _half(blocks, 0)
    return _nibbles(blocks[:, 6:22]) | _fifth_bits(blocks[:, 2:6]), d, -16 * d


def _q5_1(blocks):
    return _nibbles(blocks[:, 8:24]) | _fifth_bits(blocks[:, 4:8]), _half(blocks, 0), _half(blocks, 2)


def _q8_0(blocks):
    d = _half(blocks, 0)
    levels = (blocks[:, 2:34].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
    return levels, d, -128 * d


def _k_scales_and_mins(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K's 12 bytes of eight 6-bit scales and eight 6-bit mins.

    Bytes 0-3 hold scales 0-3 (low 6 bits) and the top bits of scales 4-7; bytes 4-7
    the same for mins; bytes 8-11 the low nibbles of scales 4-7 (low) and mins 4-7 (high).
    """
    first, second, third = packed[:, 0:4], packed[:, 4:8], packed[:, 8:12]
    scales = np.concatenate([first & 0x3F, (third & 0x0F) | ((first >> 6) << 4)], axis=-1)
    mins = np.concatenate([second & 0x3F, (third >> 4) | ((second >> 6) << 4)], axis=-1)
    return scales.astype(np.float32), mins.astype(np.float32)


def _k_affine(blocks):
    d, dmin = _half(blocks, 0), _half(blocks, 2)
    scales, mins = _k_scales_and_mins(blocks[:, 4:16])
    return d * scales, -(dmin * mins)


def _k_low_nibbles(qs: np.ndarray) -> np.ndarray:
    """128 bytes -> 256 values: each run of 32 bytes gives sub-block 2i (low nibbles) then 2i+1 (high)."""
    runs = qs.reshape(len(qs), 4, 1, 32)
    return np.concatenate([runs & 0x0F, runs >> 4], axis=2).reshape(len(qs), 256)


def _q4_k(blocks):
    scale, bias = _k_affine(blocks)
    return _k_low_nibbles(blocks[:, 16:144]), scale, bias


def _q5_k(blocks):
    scale, bias = _k_affine(blocks)
    qh = blocks[:, 16:48]  # bit j of byte l is the fifth bit of value l of sub-block j
    high = (qh[:, None, :] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1
    return _k_low_nibbles(blocks[:, 48:176]) | (high.reshape(len(blocks), 256) << 4), scale, bias


_DECODERS = {"Q4_0": _q4_0, "Q4_1": _q4_1, "Q5_0": _q5_0, "Q5_1": _q5_1, "Q8_0": _q8_0, "Q4_K": _q4_k, "Q5_K": _q5_k}
_EXACT_BITS = {"Q4_0": 4, "Q4_1": 4, "Q5_0": 5, "Q5_1": 5, "Q8_0": 8, "Q4_K": 4, "Q5_K": 5}


def _narrowest_float(scales: np.ndarray, biases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float16 scales and biases when that loses nothing, else float32."""
    half_scales, half_biases = scales.astype(np.float16), biases.astype(np.float16)
    exact = np.array_equal(half_scales.astype(np.float32), scales) and np.array_equal(
        half_biases.astype(np.float32), biases
    )
    return (half_scales, half_biases) if exact else (scales, biases)


# MLX's packing: levels as one little-endian bit stream per row, read as uint32 words.


def pack_levels(levels: np.ndarray, bits: int) -> np.ndarray:
    rows, cols = levels.shape
    if bits == 8:
        return np.ascontiguousarray(levels.astype(np.uint8)).view(np.uint32)
    if bits == 4:
        pairs = levels.astype(np.uint8).reshape(rows, cols // 2, 2)
        return np.ascontiguousarray(pairs[..., 0] | (pairs[..., 1] << 4)).view(np.uint32)
    spread = (levels.astype(np.uint8)[..., None] >> np.arange(bits, dtype=np.uint8)) & 1
    return np.packbits(spread.reshape(rows, cols * bits), axis=-1, bitorder="little").view(np.uint32)


def unpack_levels(packed: np.ndarray, bits: int, cols: int) -> np.ndarray:
    stream = np.unpackbits(np.ascontiguousarray(packed).view(np.uint8), axis=-1, bitorder="little")
    spread = stream[:, : cols * bits].reshape(len(packed), cols, bits)
    return (spread << np.arange(bits, dtype=np.uint8)).sum(-1, dtype=np.uint32).astype(np.float32)
