"""Uniform draws without replacement over CSR row ranges, vectorised; per-thread scratch buffers.

A draw covers every segment ``[start, start + size)`` (a frontier node's CSR row range) at
once: Floyd's algorithm, vectorised step by step over the segments, on 32 random bits per draw
through Lemire's exact multiply-shift. Drawn indices are marked in a per-thread scratch map
reused across calls (no sort, no ``np.unique``), int16 below 8k draws a call so it stays in
cache: at a few thousand draws a call the cost is numpy's per-call overhead and cache misses,
so these functions count their numpy calls.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from gnn.data import IntArray

_KEPT = 16  # constant arrays a thread keeps (oldest dropped first) ...
_KEPT_ITEMS = 1 << 20  # ... and their elements in all (the newest is always kept)


class Scratch(threading.local):
    """Per-thread maps reused across calls, so a call costs O(sample), not O(graph size).

    ``claim(name, size, n)`` hands out the values ``base .. base + n - 1`` of that map; entries
    below ``base`` are stale. Nothing is ever cleared (a map is zeroed only when its values
    run out), so a call that raises leaves nothing behind for the next.

    ``column`` and ``cycle`` hand out read-only constant arrays from one bounded cache."""

    def __init__(self) -> None:
        self.maps: dict[str, tuple[npt.NDArray[np.signedinteger[Any]], int, int]] = {}
        self.kept: dict[tuple[str, int], IntArray] = {}  # oldest first
        self.kept_items = 0

    def column(self, m: int) -> IntArray:
        """``arange(m)`` as a read-only column."""
        column = self.kept.get(("column", m))
        if column is None:
            column = self._keep(("column", m), np.arange(m)[:, None])
        return column

    def cycle(self, width: int, n: int) -> IntArray:
        """``arange(n) % width``, read-only."""
        cycled = self.kept.get(("cycle", width))
        if cycled is None or len(cycled) < n:
            cycled = self._keep(("cycle", width), np.tile(np.arange(width), -(-n // width)))
        return cycled[:n]

    def _keep(self, key: tuple[str, int], array: IntArray) -> IntArray:
        """Caches ``array`` (read-only) under ``key``, dropping the oldest arrays over bounds."""
        array.flags.writeable = False
        kept = self.kept
        old = kept.pop(key, None)
        if old is not None:
            self.kept_items -= old.size
        kept[key] = array
        self.kept_items += array.size
        while len(kept) > 1 and (len(kept) > _KEPT or self.kept_items > _KEPT_ITEMS):
            self.kept_items -= kept.pop(next(iter(kept))).size
        return array

    def claim(
        self, name: str, size: int, n: int, dtype: type[np.signedinteger[Any]] = np.int64
    ) -> tuple[npt.NDArray[np.signedinteger[Any]], int]:
        """Scratch map ``name`` (at least ``size`` long) and the first of ``n`` fresh values."""
        if name in self.maps:
            a, base, top = self.maps[name]
        else:
            a, base, top = np.zeros(0, dtype), 1, int(np.iinfo(dtype).max)
        if len(a) < size:
            a = np.zeros(size, dtype)  # 0 is below every base
        if base + n > top:
            a.fill(0)
            base = 1
        self.maps[name] = a, base + n, top
        return a, base


scratch = Scratch()  # the calling thread's maps and constants


def ranges(start: IntArray, size: IntArray) -> tuple[IntArray, IntArray]:
    """Every index of the segments ``[start, start + size)`` and the segment it belongs to."""
    segment = np.repeat(np.arange(len(size)), size)
    shift = np.repeat(start - (np.cumsum(size) - size), size)
    return np.arange(len(segment)) + shift, segment


def floyd(
    start: IntArray, size: IntArray, m: IntArray | int, bound: int, rng: np.random.Generator
) -> tuple[IntArray, npt.NDArray[np.signedinteger[Any]], int]:
    """``m`` (per segment, or one for all) distinct indices of each segment ``[start, start +
    size)``, a uniformly random subset (``m <= size``): Floyd's algorithm, all segments and
    steps at once. Returns them (step by step for one ``m``: index ``i`` belongs to segment
    ``i % len(size)``; else segment by segment), and the scratch map (``bound`` long) and
    base under which they are marked (``map[index] >= base``).

    Floyd: step ``j`` of ``m`` draws ``t`` uniformly from ``[0, size - m + j]`` and takes
    ``t``, or ``size - m + j`` if an earlier step holds ``t`` already. Here every step draws at
    once; a step whose ``t`` an earlier step also drew takes its fallback; a fallback that a
    later step drew as its ``t`` makes that step fall back too, and so on. The result is
    exactly Floyd's, so exactly uniform; with ``m <= size / 2`` (what callers ask) a fallback
    is rare and a chain of them rarer."""
    if isinstance(m, int):  # step-major: rows are steps, so the inner loops are long
        fallback = (start + (size - m)) + scratch.column(m)
        most = int(size.max(initial=0))
        index = below(fallback - (start - 1), most, rng)  # step j: from [0, size - m + j]
        index += start
    else:  # segment-major
        seg = np.repeat(np.arange(len(size)), m)
        step = np.arange(len(seg)) - np.repeat(np.cumsum(m) - m, m)
        begin = start[seg]
        fallback = (begin + (size - m)[seg]) + step
        index = below(fallback - (begin - 1), int(size.max(initial=0)), rng)
        index += begin
    index, fallback = index.ravel(), fallback.ravel()
    n = len(index)
    dtype = np.int16 if n < 1 << 13 else np.int32  # a small map stays in cache
    owner, base = scratch.claim(f"slot-{dtype.__name__}", bound, n, dtype)
    top = base + n - 1
    mark = np.arange(top, base - 1, -1, dtype=dtype)  # earlier steps: larger
    np.maximum.at(owner, index, mark)  # each index is marked by the earliest step drawing it
    late = (owner.take(index) != mark).nonzero()[0]
    while len(late):
        taken = fallback.take(late)
        held = owner.take(taken)  # the earliest step that drew it, if any: it falls back next
        index[late] = taken
        owner[taken] = mark.take(late)
        late = top - held[held >= base]
    return index, owner, base


def below(span: IntArray, most: int, rng: np.random.Generator) -> IntArray:
    """Independent uniform integers in ``[0, span)``, elementwise (``0 < span <= most <
    2**31``): Lemire's multiply-shift of 32 random bits, with its rejection step, so exactly
    uniform. Half the random bits and no float round trip, against ``(random() *
    span).astype()``."""
    bits = rng.bit_generator.random_raw((span.size + 1) // 2).view(np.uint32)
    product = bits[: span.size].reshape(span.shape) * span  # < 2**63
    low = product & 0xFFFFFFFF
    if low.min(initial=1 << 32) < most:  # rejection needs low < 2**32 % span < most: rare
        flat, spans = product.reshape(-1), span.reshape(-1)  # views
        redo = np.flatnonzero(low < span)
        redo = redo[low.reshape(-1)[redo] < (1 << 32) % spans[redo]]
        while len(redo):
            more = rng.bit_generator.random_raw(len(redo)) & 0xFFFFFFFF
            flat[redo] = more.astype(np.int64) * spans[redo]
            redo = redo[(flat[redo] & 0xFFFFFFFF) < (1 << 32) % spans[redo]]
    product >>= 32
    return product


def choose(
    start: IntArray, size: IntArray, k: int, bound: int, rng: np.random.Generator
) -> tuple[IntArray, IntArray | None]:
    """Up to ``k`` indices per segment ``[start, start + size)``, drawn uniformly without
    replacement (all of a segment of size <= ``k``), and the segment each belongs to (``None``
    when every segment got ``k``: index ``i`` belongs to segment ``i % len(size)``)."""
    pick = size >= 2 * k  # draw the k to keep
    if pick.all():
        return floyd(start, size, k, bound, rng)[0], None
    every = size <= k
    indices, segments = [], []
    if every.any():
        whole = np.flatnonzero(every)
        index, seg = ranges(start[whole], size[whole])
        indices.append(index)
        segments.append(whole[seg])
    keep = np.flatnonzero(pick)
    if len(keep):
        indices.append(floyd(start[keep], size[keep], k, bound, rng)[0])
        segments.append(np.tile(keep, k))
    leave = np.flatnonzero(~(every | pick))  # k < size < 2k: draw the size - k to leave out
    if len(leave):
        first, n = start[leave], size[leave]
        _, owner, base = floyd(first, n, n - k, bound, rng)
        index, seg = ranges(first, n)
        rest = owner[index] < base
        indices.append(index[rest])
        segments.append(leave[seg[rest]])
    return np.concatenate(indices), np.concatenate(segments)
