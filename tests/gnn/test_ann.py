"""gnn.ann: an index restored from its bytes holds the rows it was built over, and bytes that
are not the index of the item table at hand are refused."""

from __future__ import annotations

import numpy as np
import pytest

from gnn.ann import EXPANSION_SEARCH, build_index, empty_index, index_bytes, restore_index


def _table(n: int, d: int) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, d)).astype(np.float32)


def test_a_restored_index_holds_the_built_rows_and_settings() -> None:
    table = _table(300, 8)
    restored = restore_index(index_bytes(build_index(table)), 300, 8)
    assert len(restored) == 300 and restored.ndim == 8
    assert restored.expansion_search == EXPANSION_SEARCH
    np.testing.assert_array_equal(restored.get(np.arange(300)), table)
    assert restored.search(table[7], 1).keys.tolist() == [int(np.argmax(table @ table[7]))]


def _shifted_keys(table: np.ndarray) -> bytes:
    index = empty_index(table.shape[1])
    index.add(np.arange(1, len(table) + 1), table)  # rows 1 … n, not 0 … n-1
    return index_bytes(index)


@pytest.mark.parametrize(
    ("data", "rows", "dim", "message"),
    [
        (b"\x00" * 64, 300, 8, "not a usearch index"),
        (index_bytes(build_index(_table(300, 8))), 300, 16, "8-dimensional F32 vectors under IP"),
        (index_bytes(build_index(_table(300, 8))), 301, 8, r"300 rows, not .* rows 0 … 300"),
        (_shifted_keys(_table(300, 8)), 300, 8, r"300 rows, not .* rows 0 … 299"),
    ],
    ids=["garbage", "dimension", "row count", "keys"],
)
def test_bytes_that_are_not_this_tables_index_are_refused(
    data: bytes, rows: int, dim: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        restore_index(data, rows, dim)
