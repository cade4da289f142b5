"""The draw primitives: a uniform subset without replacement per segment, exactly uniform
bounded integers, and one bounded, per-thread cache of read-only constants."""

from __future__ import annotations

import itertools
import threading

import numpy as np
from scipy import stats

from gnn import draws


def _subset_pvalue(offsets: np.ndarray, size: int) -> float:
    """Chi-square p-value that the rows of ``offsets`` (one k-subset of range(size) per row)
    are uniform over all k-subsets."""
    k = offsets.shape[1]
    code = np.left_shift(1, offsets).sum(axis=1)
    every = [sum(1 << i for i in s) for s in itertools.combinations(range(size), k)]
    counts = np.bincount(code, minlength=1 << size)
    assert counts.sum() == counts[every].sum()  # nothing outside the k-subsets
    return float(stats.chisquare(counts[every]).pvalue)


def _choose(
    start: np.ndarray, size: np.ndarray, k: int, bound: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``draws.choose`` with its segments spelled out."""
    index, segment = draws.choose(start, size, k, bound, rng)
    return index, np.arange(len(index)) % len(size) if segment is None else segment


def test_draw_is_a_uniform_subset_without_replacement() -> None:
    """Each segment gets min(size, k) distinct indices of its own, every k-subset alike (all
    paths: take all, draw the k to keep, draw the size - k to leave out)."""
    rng = np.random.default_rng(11)
    k, n = 3, 40_000
    sizes = np.tile([2, 4, 5, 6, 9], n)  # 4, 5: leave out; 6, 9: keep (Floyd with a fallback)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    index, segment = _choose(start, sizes, k, int(sizes.sum()), rng)
    assert np.array_equal(np.bincount(segment, minlength=len(sizes)), np.minimum(sizes, k))
    order = np.lexsort((index, segment))
    index, segment = index[order], segment[order]
    offset = index - start[segment]
    assert ((offset >= 0) & (offset < sizes[segment])).all()
    for size in (4, 5, 6, 9):
        mine = sizes[segment] == size
        rows = offset[mine].reshape(-1, k)
        assert (np.diff(rows, axis=1) > 0).all()  # distinct
        assert _subset_pvalue(rows, size) > 1e-4, size
    # all segments large: the one-matrix path
    sizes = np.full(n, 7)
    index, segment = _choose(np.arange(n) * 7, sizes, k, 7 * n, rng)
    assert np.array_equal(np.bincount(segment, minlength=n), np.full(n, k))
    order = np.lexsort((index, segment))  # the draw's order is its own: group by segment
    rows = (index - segment * 7)[order].reshape(n, k)
    assert ((rows >= 0) & (rows < 7)).all()
    assert (np.diff(rows, axis=1) > 0).all()
    assert _subset_pvalue(rows, 7) > 1e-4


def test_bounded_integers_are_exactly_uniform() -> None:
    """Lemire's multiply-shift maps 2**32 values onto ``span``: without its rejection step,
    at ``span = 3 * 2**29`` the values repeat a 3, 3, 2 pattern of preimages (8 in 3), a bias
    a chi-square on ``value % 3`` sees at once (p ~ 1e-200 here). With it (a quarter of the
    draws are redone), every value is as likely."""
    span = 3 * 2**29
    values = draws.below(np.full((30, 1_000), span, np.int64), span, np.random.default_rng(14))
    assert values.shape == (30, 1_000)
    assert ((values >= 0) & (values < span)).all()
    assert stats.chisquare(np.bincount((values % 3).ravel(), minlength=3)).pvalue > 1e-4
    small = draws.below(np.tile(np.arange(1, 8), 5_000), 7, np.random.default_rng(15))
    for size in range(1, 8):
        counts = np.bincount(small[size - 1 :: 7], minlength=size)
        assert len(counts) == size
        if size > 1:
            assert stats.chisquare(counts).pvalue > 1e-4


def test_constants_are_read_only_and_cached() -> None:
    s = draws.Scratch()
    column = s.column(4)
    assert np.array_equal(column, np.arange(4)[:, None]) and not column.flags.writeable
    assert s.column(4) is column
    cycled = s.cycle(3, 7)
    assert np.array_equal(cycled, np.arange(7) % 3) and not cycled.flags.writeable
    assert np.array_equal(s.cycle(3, 20), np.arange(20) % 3)  # grows
    assert s.cycle(3, 5).base is s.cycle(3, 20).base  # kept, sliced
    assert s.column(4) is column  # one cache for both kinds


def test_constant_cache_is_bounded() -> None:
    s = draws.Scratch()
    for width in range(1, 200):
        s.cycle(width, 1_000)
    assert len(s.kept) <= draws._KEPT
    assert s.kept_items == sum(a.size for a in s.kept.values()) <= draws._KEPT_ITEMS
    assert ("cycle", 199) in s.kept  # the newest stays
    huge = s.cycle(7, draws._KEPT_ITEMS + 1)
    assert list(s.kept) == [("cycle", 7)] and len(huge) == draws._KEPT_ITEMS + 1


def test_scratch_is_per_thread() -> None:
    draws.scratch.column(5)
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(len(draws.scratch.kept)))
    thread.start()
    thread.join()
    assert seen == [0] and ("column", 5) in draws.scratch.kept
