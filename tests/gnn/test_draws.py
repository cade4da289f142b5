"""The draw primitives: a uniform subset without replacement, exactly uniform bounded
integers, and per-thread scratch maps."""

from __future__ import annotations

import itertools
import threading

import numpy as np
from scipy import stats

from gnn import draws


def _subset_pvalue(rows: np.ndarray, size: int) -> float:
    """Chi-square p-value that the rows (one k-subset of range(size) each) are uniform over
    all k-subsets."""
    k = rows.shape[1]
    code = np.left_shift(1, rows).sum(axis=1)
    every = [sum(1 << i for i in s) for s in itertools.combinations(range(size), k)]
    counts = np.bincount(code, minlength=1 << size)
    assert counts.sum() == counts[every].sum()  # nothing outside the k-subsets
    return float(stats.chisquare(counts[every]).pvalue)


def test_subset_is_uniform_without_replacement() -> None:
    """min(size, k) distinct offsets in [0, size), every k-subset alike, written after ``at``
    without touching what comes before."""
    state = draws.stream(11)
    k, runs = 3, 20_000
    out = np.full(8, -7, np.int64)
    for size in (2, 3, 4, 6, 9):
        rows = []
        for _ in range(runs):
            end = draws.subset(state, size, k, out, 2)
            assert end == 2 + min(size, k) and out[0] == out[1] == -7
            rows.append(np.sort(out[2:end]))
        drawn = np.array(rows)
        assert ((drawn >= 0) & (drawn < size)).all()
        assert (np.diff(drawn, axis=1) > 0).all()  # distinct
        if size > k:
            assert _subset_pvalue(drawn, size) > 1e-4, size
        else:
            assert (drawn == np.arange(size)).all()  # all of a small row


def test_bounded_integers_are_exactly_uniform() -> None:
    """Lemire's multiply-shift maps 2**32 values onto ``n``: without its rejection step, at
    ``n = 3 * 2**29`` the values repeat a 3, 3, 2 pattern of preimages (8 in 3), a bias a
    chi-square on ``value % 3`` sees at once. With it, every value is as likely."""
    state = draws.stream(14)
    n = 3 * 2**29
    values = np.array([draws.below(state, n) for _ in range(30_000)])
    assert ((values >= 0) & (values < n)).all()
    assert stats.chisquare(np.bincount(values % 3, minlength=3)).pvalue > 1e-4
    for size in range(1, 8):
        counts = np.bincount([draws.below(state, size) for _ in range(5_000)], minlength=size)
        assert len(counts) == size
        if size > 1:
            assert stats.chisquare(counts).pvalue > 1e-4


def test_same_seed_same_draws() -> None:
    """The compiled draws are seeded from the caller's generator (advancing it, as its own
    draws would); the same seed gives the same draws, another seed others."""
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    seed = draws.seed_from(a)
    assert seed == draws.seed_from(b) and a.integers(0, 10**9) == b.integers(0, 10**9)
    first, again = draws.stream(seed), draws.stream(seed)
    drawn = [draws.below(first, 1000) for _ in range(20)]
    assert drawn == [draws.below(again, 1000) for _ in range(20)]
    other = draws.stream(draws.seed_from(a))
    assert drawn != [draws.below(other, 1000) for _ in range(20)]


def test_random_bits_look_random() -> None:
    """Each of the 64 bits is set half the time, and consecutive outputs are independent."""
    state = draws.stream(0)
    words = np.array([draws.bits(state) for _ in range(20_000)], np.uint64)
    ones = ((words[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).sum(axis=0)
    ones = ones.astype(np.int64)
    assert (np.abs(ones - 10_000) < 5 * 71).all()  # 5 standard deviations
    low = (words & np.uint64(0xFF)).astype(np.int64)
    pairs = np.bincount(low[:-1] // 16 * 16 + low[1:] // 16, minlength=256)
    assert stats.chisquare(pairs).pvalue > 1e-4


def test_scratch_hands_out_fresh_values_and_wraps() -> None:
    s = draws.Scratch()
    a, base = s.claim("m", 5, 3, np.int8)
    a[:] = base + 2  # this call's values
    b, next_base = s.claim("m", 5, 3, np.int8)
    assert b is a and next_base == base + 3 and (b < next_base).all()  # all stale now
    for _ in range(60):
        c, base = s.claim("m", 5, 3, np.int8)
    assert c.dtype == np.int8 and base + 3 <= np.iinfo(np.int8).max
    assert len(s.claim("m", 9, 1, np.int8)[0]) == 9  # grows


def test_scratch_is_per_thread() -> None:
    draws.scratch.claim("here", 4, 1)
    seen: list[bool] = []
    thread = threading.Thread(target=lambda: seen.append("here" in draws.scratch.maps))
    thread.start()
    thread.join()
    assert seen == [False] and "here" in draws.scratch.maps
