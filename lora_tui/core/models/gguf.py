"""Reading a GGUF file's metadata and table of tensors, through the `gguf` library (maintained with llama.cpp).

The tensor data itself is read by `mx.load` (natively, quantized blocks and
all); this module reads what `mx.load` does not tell: each tensor's GGML type,
shape and place in the file, so that an unsupported type or a truncated file
can be named before any work is done.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np


class GGUFError(Exception):
    """The file is not a GGUF file we can read; the message says why."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # row-major, as numpy and MLX see it
    type_name: str  # GGML's name for the type: Q4_0, F16, ...
    offset: int  # absolute, from the start of the file


@dataclass(frozen=True)
class GGUFFile:
    path: Path
    version: int
    metadata: dict
    tensors: list[TensorInfo]

    def tensor(self, name: str) -> TensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)


def read_gguf(path: Path) -> GGUFFile:
    """Read a GGUF file's header; raise GGUFError if it is not whole and sound."""
    path = Path(path)
    if path.stat().st_size < 24:
        raise GGUFError("the file is too short to be a GGUF file")
    try:
        reader = gguf.GGUFReader(str(path), "r")
    except ValueError as exc:
        raise GGUFError(_reason(str(exc))) from None
    except (IndexError, struct.error, OverflowError):
        raise GGUFError("the file ends inside its header (truncated?)") from None
    metadata = {name: _value(field) for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    tensors = [
        TensorInfo(t.name, tuple(int(d) for d in reversed(t.shape)), t.tensor_type.name, int(t.data_offset))
        for t in reader.tensors
    ]
    version = int(reader.fields["GGUF.version"].contents())
    return GGUFFile(path, version, metadata, tensors)


def _reason(message: str) -> str:
    if "magic" in message:
        return "it does not start with the GGUF magic bytes (not a GGUF file)"
    if "reshape" in message or "out of bounds" in message:
        return "a tensor extends past the end of the file (truncated download?)"
    if "version" in message:
        return f"its GGUF version is not supported ({message})"
    return f"it is not a GGUF file this reader understands ({message})"


def _value(field):
    """A metadata value: a string, a number, a list of strings, or a numpy array of numbers."""
    contents = field.contents()
    if field.types[0] == gguf.GGUFValueType.ARRAY and field.types[-1] != gguf.GGUFValueType.STRING:
        return np.array(contents)
    return contents


def scalar(metadata: dict, key: str, default=None):
    """A metadata value as a plain Python number or string."""
    value = metadata.get(key, default)
    if isinstance(value, np.generic):
        return value.item()
    return value
