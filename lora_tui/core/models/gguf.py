"""Reading a GGUF file's header: its metadata and its table of tensors.

The `gguf` library's GGUFReader builds a numpy view for every array element,
which takes 17 s on a 262,144-token vocabulary; import must refuse a file it
cannot use in under a second. So the header is parsed here with `struct` over
a memory map (numeric arrays come back as numpy arrays without a copy), and
the library supplies only the table of GGML types and their block sizes.
Every size read from the file is checked against the bytes left, so a
truncated or corrupt header is a GGUFError, never an IndexError or a 2**60
byte allocation.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types: struct format of each scalar type, and numpy dtype for arrays of it.
_STRING, _ARRAY = 8, 9
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_ARRAY_DTYPES = {code: np.dtype(fmt) for code, fmt in _SCALARS.items()}


class GGUFError(Exception):
    """The file is not a GGUF file we can read; the message says why."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # row-major, as numpy and MLX see it
    type_name: str  # GGML's name for the type: Q4_0, F16, ...
    offset: int  # absolute, from the start of the file
    nbytes: int

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class GGUFFile:
    path: Path
    version: int
    metadata: dict
    tensors: list[TensorInfo]

    def tensor(self, name: str) -> TensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)

    def reader(self, tensor: TensorInfo):
        """`read(start, size)`: that many of the tensor's raw bytes, read when asked (no memory map, whose
        pages would count as the process's memory), as a uint8 array."""

        def read(start: int, size: int) -> np.ndarray:
            with self.path.open("rb") as handle:
                data = os.pread(handle.fileno(), size, tensor.offset + start)
            if len(data) != size:
                raise GGUFError(f"tensor {tensor.name!r} ends early (was the file cut while importing?)")
            return np.frombuffer(data, dtype=np.uint8)

        return read


class _Cursor:
    """Reads little-endian values from a buffer, refusing to run past its end."""

    def __init__(self, buffer) -> None:
        self.buffer = buffer
        self.position = 0

    def take(self, size: int) -> int:
        start = self.position
        if size < 0 or start + size > len(self.buffer):
            raise GGUFError("the file ends inside its header (truncated?)")
        self.position += size
        return start

    def scalar(self, fmt: str):
        return struct.unpack_from(fmt, self.buffer, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        size = self.scalar("<Q")
        start = self.take(size)
        return bytes(self.buffer[start : start + size]).decode("utf-8", errors="replace")

    def value(self, kind: int):
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            return self.array(self.scalar("<I"), self.scalar("<Q"))
        if kind not in _SCALARS:
            raise GGUFError(f"its header holds a value of unknown type {kind} (corrupt file?)")
        return self.scalar(_SCALARS[kind])

    def array(self, kind: int, count: int):
        if kind == _STRING:
            if count * 8 > len(self.buffer) - self.position:
                raise GGUFError("the file ends inside its header (truncated?)")
            return [self.string() for _ in range(count)]
        if kind == _ARRAY:
            return [self.array(self.scalar("<I"), self.scalar("<Q")) for _ in range(count)]
        if kind not in _ARRAY_DTYPES:
            raise GGUFError(f"its header holds an array of unknown type {kind} (corrupt file?)")
        dtype = _ARRAY_DTYPES[kind]
        start = self.take(count * dtype.itemsize)
        return np.frombuffer(self.buffer, dtype=dtype, count=count, offset=start)


def read_gguf(path: Path) -> GGUFFile:
    """Read a GGUF file's header; raise GGUFError if it is not whole and sound."""
    path = Path(path)
    mapped = _mapped(path)
    version, metadata, tensors = _parse(memoryview(mapped), len(mapped))
    metadata = {key: np.array(value) if isinstance(value, np.ndarray) else value for key, value in metadata.items()}
    return GGUFFile(path, version, metadata, tensors)


def peek_metadata(path: Path, keys: set[str]) -> dict:
    """The header values named in `keys`, read only as far as the last of them (for listing many files)."""
    cursor = _Cursor(memoryview(_mapped(Path(path))))
    cursor.take(4 + 4 + 8)
    found = {}
    for _ in range(cursor.scalar("<Q")):
        key = cursor.string()
        value = cursor.value(cursor.scalar("<I"))
        if key in keys:
            found[key] = np.array(value) if isinstance(value, np.ndarray) else value
            if len(found) == len(keys):
                break
    return found


def _mapped(path: Path) -> mmap.mmap:
    """The file, memory-mapped, once it is known to start like a GGUF file."""
    if path.stat().st_size < 24:
        raise GGUFError("the file is too short to be a GGUF file")
    with path.open("rb") as handle:
        # Closed by the garbage collector: views into it may outlive a parse that failed half-way.
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if mapped[:4] != GGUF_MAGIC:
        raise GGUFError("it does not start with the GGUF magic bytes (not a GGUF file)")
    return mapped


def _parse(buffer, file_size: int) -> tuple[int, dict, list[TensorInfo]]:
    cursor = _Cursor(buffer)
    cursor.take(4)
    version = cursor.scalar("<I")
    if version not in SUPPORTED_VERSIONS:
        raise GGUFError(f"its GGUF version {version} is not supported (versions 2 and 3 are)")
    tensor_count, kv_count = cursor.scalar("<Q"), cursor.scalar("<Q")
    if tensor_count > file_size or kv_count > file_size:
        raise GGUFError("its header counts more entries than the file could hold (corrupt file?)")
    metadata = {}
    for _ in range(kv_count):
        key = cursor.string()
        metadata[key] = cursor.value(cursor.scalar("<I"))
    raw_tensors = [_tensor_entry(cursor) for _ in range(tensor_count)]
    alignment = int(scalar(metadata, "general.alignment", DEFAULT_ALIGNMENT) or DEFAULT_ALIGNMENT)
    data_start = -(-cursor.position // alignment) * alignment
    tensors = [_tensor_info(entry, data_start, file_size) for entry in raw_tensors]
    return version, metadata, tensors


def _tensor_entry(cursor: _Cursor) -> tuple[str, tuple[int, ...], int, int]:
    name = cursor.string()
    dims = cursor.scalar("<I")
    if dims > 8:
        raise GGUFError(f"tensor {name!r} claims {dims} dimensions (corrupt file?)")
    shape = tuple(cursor.scalar("<Q") for _ in range(dims))
    return name, tuple(reversed(shape)), cursor.scalar("<I"), cursor.scalar("<Q")


def _tensor_info(entry: tuple[str, tuple[int, ...], int, int], data_start: int, file_size: int) -> TensorInfo:
    name, shape, type_code, relative_offset = entry
    try:
        quant = GGMLQuantizationType(type_code)
    except ValueError:
        raise GGUFError(f"tensor {name!r} has an unknown GGML type number {type_code}") from None
    block_size, type_size = GGML_QUANT_SIZES[quant]
    count = int(np.prod(shape, dtype=np.float64))
    if shape and shape[-1] % block_size:
        raise GGUFError(f"tensor {name!r} of type {quant.name} has rows of {shape[-1]}, not whole blocks")
    nbytes = count // block_size * type_size
    offset = data_start + relative_offset
    if offset + nbytes > file_size:
        raise GGUFError("a tensor extends past the end of the file (truncated download?)")
    return TensorInfo(name, shape, quant.name, offset, nbytes)


def scalar(metadata: dict, key: str, default=None):
    """A metadata value as a plain Python number or string."""
    value = metadata.get(key, default)
    if isinstance(value, np.generic):
        return value.item()
    return value
