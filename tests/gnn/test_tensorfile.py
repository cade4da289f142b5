"""``gnn.tensorfile`` reads what safetensors writes, as views of the buffer (no copy), and
refuses a header that does not describe the bytes exactly."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors.numpy import save as save_arrays
from safetensors.torch import save as save_tensors

from gnn.tensorfile import TensorFileError, arrays, tensors


def _buffer(data: bytes) -> np.ndarray:
    return np.frombuffer(bytearray(data), np.uint8)


def _file(header: dict[str, object], data: bytes) -> np.ndarray:
    raw = json.dumps(header).encode()
    return _buffer(struct.pack("<Q", len(raw)) + raw + data)


def test_arrays_are_the_saved_arrays_and_views_of_the_buffer() -> None:
    saved: dict[str, np.ndarray] = {
        "f": np.arange(12, dtype=np.float32).reshape(3, 4),
        "i": np.array([-1, 5, 7], np.int64),
        "b": np.array([True, False]),
        "d": np.linspace(0, 1, 5),
        "empty": np.zeros((0, 4), np.float32),
    }
    buffer = _buffer(save_arrays(saved, metadata={"who": "test"}))
    loaded = arrays(buffer)
    assert loaded.keys() == saved.keys()
    for name, array in saved.items():
        assert loaded[name].dtype == array.dtype and np.array_equal(loaded[name], array)
    assert np.shares_memory(loaded["f"], buffer)


def test_tensors_are_the_saved_tensors_and_views_of_the_buffer() -> None:
    saved = {
        "w": torch.randn(4, 3),
        "h": torch.randn(5).to(torch.bfloat16),
        "n": torch.tensor([3, -2], dtype=torch.int64),
        "none": torch.zeros(0, 2),
    }
    buffer = _buffer(save_tensors(saved))
    loaded = tensors(buffer)
    assert loaded.keys() == saved.keys()
    for name, tensor in saved.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor)
    start = buffer.ctypes.data
    assert start < loaded["w"].data_ptr() < start + len(buffer)  # a view, not a copy


F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
BAD = {
    "too short": _buffer(b"\x01\x00"),
    "header past the end": _buffer(struct.pack("<Q", 64) + b"{}"),
    "header not JSON": _buffer(struct.pack("<Q", 3) + b"{x}"),
    "header not an object": _file([], b""),  # type: ignore[arg-type]
    "unknown dtype": _file({"a": {**F32_2, "dtype": "F7"}}, bytes(8)),
    "size not the shape's": _file({"a": {**F32_2, "shape": [3]}}, bytes(8)),
    "negative offset": _file({"a": {**F32_2, "data_offsets": [-8, 0]}}, bytes(8)),
    "entry missing offsets": _file({"a": {"dtype": "F32", "shape": [2]}}, bytes(8)),
    "a gap": _file({"a": {**F32_2, "data_offsets": [4, 12]}}, bytes(12)),
    "overlap": _file({"a": F32_2, "b": F32_2}, bytes(8)),
    "bytes left over": _file({"a": F32_2}, bytes(9)),
    "data cut short": _file({"a": F32_2}, bytes(7)),
}


@pytest.mark.parametrize("case", BAD)
def test_a_header_that_does_not_describe_the_bytes_is_refused(case: str) -> None:
    with pytest.raises(TensorFileError):
        arrays(BAD[case])
    with pytest.raises(TensorFileError):
        tensors(BAD[case])
