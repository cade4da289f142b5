"""The arrays of a safetensors file held in memory, as views of its bytes (no copy).

The format: an 8-byte little-endian header length ``n``, ``n`` bytes of JSON (each tensor's
``dtype``, ``shape`` and ``data_offsets`` into the data that follows, plus an optional
``__metadata__`` map) and the tensors' bytes, back to back. ``safetensors.numpy.load`` and
``safetensors.torch.load`` copy every tensor out of the bytes they are given; a model version
reads each file once into a buffer of its own (``gnn.manifest``), so its arrays can be views
of that buffer. The header is checked as strictly as safetensors' own reader does: known
dtypes, sizes that match the shapes, tensors that tile the data exactly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

Buffer = npt.NDArray[np.uint8]
MAX_HEADER = 100_000_000  # safetensors' own limit

_NUMPY = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype(np.uint8),
    "I8": np.dtype(np.int8),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
_TORCH = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I32": torch.int32,
    "F32": torch.float32,
    "I64": torch.int64,
    "F64": torch.float64,
}
_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2}
_SIZE |= {"U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}


class TensorFileError(ValueError):
    """Bytes that are not a well-formed safetensors file."""


@dataclass(frozen=True)
class _Entry:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # offset in the whole buffer
    end: int


def arrays(buffer: Buffer) -> dict[str, np.ndarray]:
    """Every tensor of the safetensors file in ``buffer`` as a numpy view of it."""
    out: dict[str, np.ndarray] = {}
    for name, e in _entries(buffer).items():
        if e.dtype not in _NUMPY:
            raise TensorFileError(f"{name}: dtype {e.dtype} has no numpy equivalent")
        dtype = _NUMPY[e.dtype]
        count = (e.end - e.begin) // dtype.itemsize
        out[name] = np.frombuffer(buffer, dtype, count, e.begin).reshape(e.shape)
    return out


def tensors(buffer: Buffer) -> dict[str, torch.Tensor]:
    """Every tensor of the safetensors file in ``buffer`` as a torch view of it (it shares
    the buffer's memory and keeps it alive; the buffer must be writable)."""
    out: dict[str, torch.Tensor] = {}
    for name, e in _entries(buffer).items():
        if e.dtype not in _TORCH:
            raise TensorFileError(f"{name}: dtype {e.dtype} has no torch equivalent")
        count = (e.end - e.begin) // _SIZE[e.dtype]
        if count == 0:  # torch.frombuffer refuses an empty slice
            out[name] = torch.empty(e.shape, dtype=_TORCH[e.dtype])
            continue
        flat = torch.frombuffer(buffer, dtype=_TORCH[e.dtype], count=count, offset=e.begin)
        out[name] = flat.reshape(e.shape)
    return out


def _entries(buffer: Buffer) -> dict[str, _Entry]:
    """The header's tensors, checked against the buffer."""
    total = len(buffer)
    if total < 8:
        raise TensorFileError(f"{total} bytes: shorter than the header length")
    n = int.from_bytes(buffer[:8].tobytes(), "little")
    if n > MAX_HEADER or 8 + n > total:
        raise TensorFileError(f"header length {n} does not fit in {total} bytes")
    try:
        header = json.loads(buffer[8 : 8 + n].tobytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TensorFileError(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise TensorFileError("header is not a JSON object")
    header.pop("__metadata__", None)
    start = 8 + n
    entries = {str(name): _entry(str(name), raw, start) for name, raw in header.items()}
    at = start
    for name, e in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if e.begin != at:
            raise TensorFileError(f"{name}: starts at {e.begin - start}, not {at - start}")
        at = e.end
    if at != total:
        raise TensorFileError(f"tensors end at byte {at}, the file at {total}")
    return entries


def _entry(name: str, raw: object, start: int) -> _Entry:
    try:
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        dtype, shape, (begin, end) = str(raw["dtype"]), raw["shape"], raw["data_offsets"]
        if not all(type(v) is int and v >= 0 for v in [*shape, begin, end]):
            raise TypeError("shape and offsets must be integers >= 0")
    except (KeyError, TypeError, ValueError) as exc:
        raise TensorFileError(f"{name}: bad header entry ({exc})") from None
    if dtype not in _SIZE:
        raise TensorFileError(f"{name}: unknown dtype {dtype!r}")
    if end - begin != math.prod(shape) * _SIZE[dtype]:
        raise TensorFileError(f"{name}: {end - begin} bytes for {dtype} of shape {shape}")
    return _Entry(dtype, tuple(shape), start + begin, start + end)
