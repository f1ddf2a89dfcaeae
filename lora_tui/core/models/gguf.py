"""Reading the GGUF container: metadata and the table of tensors.

The tensor data itself is read by `mx.load` (natively, quantized blocks and
all); this module reads what `mx.load` does not tell: each tensor's GGML type,
shape and place in the file, so that an unsupported type or a truncated file
can be named before any work is done.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGML tensor types: id -> (name, elements per block, bytes per block).
TENSOR_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
}

# Metadata value types: id -> struct format (None for string and array).
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_NUMPY_TYPES = {
    0: np.uint8,
    1: np.int8,
    2: np.uint16,
    3: np.int16,
    4: np.uint32,
    5: np.int32,
    6: np.float32,
    7: np.bool_,
    10: np.uint64,
    11: np.int64,
    12: np.float64,
}
_STRING, _ARRAY = 8, 9


class GGUFError(Exception):
    """The file is not a GGUF file we can read; the message says why."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # row-major, as numpy and MLX see it
    type_id: int
    offset: int  # absolute, from the start of the file

    @property
    def type_name(self) -> str:
        return TENSOR_TYPES.get(self.type_id, (f"type {self.type_id}", 0, 0))[0]

    @property
    def nbytes(self) -> int | None:
        if self.type_id not in TENSOR_TYPES:
            return None
        _, block, block_bytes = TENSOR_TYPES[self.type_id]
        return int(np.prod(self.shape, dtype=np.int64)) // block * block_bytes


@dataclass(frozen=True)
class GGUFFile:
    path: Path
    version: int
    metadata: dict
    tensors: list[TensorInfo]

    def tensor(self, name: str) -> TensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)


class _Cursor:
    def __init__(self, buffer, size: int) -> None:
        self.buffer = buffer
        self.size = size
        self.pos = 0

    def take(self, fmt: str):
        width = struct.calcsize("<" + fmt)
        if self.pos + width > self.size:
            raise GGUFError("the file ends inside its header (truncated?)")
        (value,) = struct.unpack_from("<" + fmt, self.buffer, self.pos)
        self.pos += width
        return value

    def string(self) -> str:
        length = self.take("Q")
        if self.pos + length > self.size:
            raise GGUFError("the file ends inside its header (truncated?)")
        raw = bytes(self.buffer[self.pos : self.pos + length])
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def array(self):
        item_type, count = self.take("I"), self.take("Q")
        if item_type == _STRING:
            return [self.string() for _ in range(count)]
        if item_type == _ARRAY:
            return [self.array() for _ in range(count)]
        if item_type not in _NUMPY_TYPES:
            raise GGUFError(f"unknown metadata value type {item_type}")
        dtype = np.dtype(_NUMPY_TYPES[item_type])
        end = self.pos + count * dtype.itemsize
        if end > self.size:
            raise GGUFError("the file ends inside its header (truncated?)")
        values = np.frombuffer(self.buffer, dtype=dtype, count=count, offset=self.pos).copy()
        self.pos = end
        return values

    def value(self, value_type: int):
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            return self.array()
        if value_type not in _SCALAR_FORMATS:
            raise GGUFError(f"unknown metadata value type {value_type}")
        return self.take(_SCALAR_FORMATS[value_type])


def read_gguf(path: Path) -> GGUFFile:
    """Read a GGUF file's header; raise GGUFError if it is not whole and sound."""
    path = Path(path)
    with open(path, "rb") as handle:
        size = path.stat().st_size
        if size < 24:
            raise GGUFError("the file is too short to be a GGUF file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            return _parse(path, buffer, size)


def _parse(path: Path, buffer, size: int) -> GGUFFile:
    if buffer[:4] != MAGIC:
        raise GGUFError("it does not start with the GGUF magic bytes (not a GGUF file)")
    cursor = _Cursor(buffer, size)
    cursor.pos = 4
    version = cursor.take("I")
    if version not in (2, 3):
        raise GGUFError(f"GGUF version {version} is not supported (2 and 3 are)")
    tensor_count, kv_count = cursor.take("Q"), cursor.take("Q")
    metadata = {}
    for _ in range(kv_count):
        key = cursor.string()
        metadata[key] = cursor.value(cursor.take("I"))
    raw_tensors = []
    for _ in range(tensor_count):
        name = cursor.string()
        n_dims = cursor.take("I")
        dims = [cursor.take("Q") for _ in range(n_dims)]
        type_id, offset = cursor.take("I"), cursor.take("Q")
        raw_tensors.append((name, tuple(reversed(dims)), type_id, offset))
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))
    data_start = -(-cursor.pos // alignment) * alignment
    tensors = [TensorInfo(name, shape, type_id, data_start + offset) for name, shape, type_id, offset in raw_tensors]
    for tensor in tensors:
        if tensor.nbytes is not None and tensor.offset + tensor.nbytes > size:
            raise GGUFError(f"tensor {tensor.name!r} extends past the end of the file (truncated download?)")
    return GGUFFile(path, version, metadata, tensors)


def scalar(metadata: dict, key: str, default=None):
    """A metadata value as a plain Python number or string."""
    value = metadata.get(key, default)
    if isinstance(value, np.generic):
        return value.item()
    return value
