"""Uniform draws for the sampler, compiled with numba; per-thread scratch maps.

The sampler's cost is one draw and a few random memory reads per sampled edge. Vectorised
numpy spends most of that on per-call overhead and temporary arrays (a hop is dozens of
numpy calls over a few thousand elements), so the draws are plain loops compiled by numba.

Random bits come from SplitMix64 (Steele, Lea & Flood, OOPSLA 2014; Java's
``SplittableRandom``): three multiply-xorshift lines on a 64-bit counter, seeded per call from
the caller's ``np.random.Generator`` (``seed_from``), so the same seed gives the same sample.
Library generators cost too much here: numba's own ``np.random`` takes ~13 ns a draw (a
thread-local lookup each time), and passing a numpy ``Generator`` into compiled code ~8 µs a
call to unbox, a fifth of a small sample.
"""

from __future__ import annotations

import threading
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from gnn.data import IntArray

_TWO_32 = 1 << 32


def seed_from(rng: np.random.Generator) -> int:
    """A seed for the compiled draws, from ``rng`` (advancing it)."""
    return int(rng.bit_generator.random_raw()) >> 1  # 63 bits: a compiled int64


_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's constants
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@numba.njit(nogil=True, cache=True)
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@numba.njit(nogil=True, cache=True)
def bits(state: npt.NDArray[np.uint64]) -> int:
    """The next 64 random bits (a uint64) of the SplitMix64 stream counting at ``state[0]``."""
    state[0] += _GAMMA
    return _mix(state[0])  # type: ignore[return-value]


@numba.njit(nogil=True, cache=True)
def fill(state: npt.NDArray[np.uint64], out: IntArray, at: int, n: int) -> None:
    """``out[at:at + n]`` = the high 32 bits of the stream's next ``n`` outputs, the same as
    ``n`` calls of ``bits``; a counter-based stream needs no call to wait for the one before,
    so this loop runs in SIMD lanes (~0.3 ns an output here, against ~3 ns one by one)."""
    s = state[0]
    for i in range(n):
        out[at + i] = np.int64(_mix(s + np.uint64(i + 1) * _GAMMA) >> np.uint64(32))
    state[0] = s + np.uint64(n) * _GAMMA


@numba.njit(nogil=True, cache=True)
def stream(seed: int) -> npt.NDArray[np.uint64]:
    """A SplitMix64 state for ``seed``."""
    state = np.zeros(1, np.uint64)
    state[0] = np.uint64(seed)
    return state


@numba.njit(nogil=True, cache=True)
def below(state: npt.NDArray[np.uint64], n: int) -> int:
    """A uniform integer in ``[0, n)``, ``0 < n < 2**31``, exactly."""
    return scaled(_high32(state), n, state)


@numba.njit(nogil=True, cache=True)
def _high32(state: npt.NDArray[np.uint64]) -> int:
    """The high 32 bits of the stream's next output."""
    return int(np.int64(bits(state) >> np.uint64(32)))


@numba.njit(nogil=True, cache=True)
def scaled(x: int, n: int, state: npt.NDArray[np.uint64]) -> int:
    """The 32 random bits ``x`` mapped onto ``[0, n)`` exactly: Lemire's multiply-shift with
    its rejection step, which redraws from ``state`` (without it, some values of a large
    ``n`` would have one preimage more than others)."""
    m = x * n
    low = m & 0xFFFFFFFF
    if low < n:
        threshold = (_TWO_32 - n) % n
        while low < threshold:
            m = _high32(state) * n
            low = m & 0xFFFFFFFF
    return int(m >> 32)


@numba.njit(nogil=True, cache=True)
def subset(state: npt.NDArray[np.uint64], size: int, k: int, out: IntArray, at: int) -> int:
    """Writes ``min(k, size)`` distinct offsets in ``[0, size)``, a uniformly random subset
    (all of them when ``size <= k``), to ``out[at:]``; returns the index after the last.

    Floyd's algorithm: step ``j`` (``size - k <= j < size``) draws ``t`` from ``[0, j]`` and
    takes ``t``, or ``j`` if an earlier step took ``t``. That costs k draws whatever the
    size (a popular item's row is never read whole). A step scans the earlier ones only
    when a 64-bit mask of them (by ``t % 64``) says it might have been taken."""
    if size <= k:
        for j in range(size):
            out[at + j] = j
        return at + size
    fill(state, out, at, k)  # each slot holds its step's random bits until it takes its t
    end = at
    seen = np.uint64(0)  # bit t % 64 of every t taken, so most steps need no scan
    for j in range(size - k, size):
        t = scaled(out[end], j + 1, state)
        bit = np.uint64(1) << np.uint64(t & 63)
        if seen & bit:
            for q in range(at, end):
                if out[q] == t:
                    t = j
                    bit = np.uint64(1) << np.uint64(t & 63)
                    break
        seen |= bit
        out[end] = t
        end += 1
    return end


class Scratch(threading.local):
    """Per-thread maps reused across calls, so a call costs O(sample), not O(graph size).

    ``claim(name, size, n)`` hands out the values ``base .. base + n - 1`` of that map; entries
    below ``base`` are stale. Nothing is ever cleared (a map is zeroed only when its values
    run out), so a call that raises leaves nothing behind for the next."""

    def __init__(self) -> None:
        self.maps: dict[str, tuple[npt.NDArray[np.signedinteger[Any]], int, int]] = {}

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


scratch = Scratch()  # the calling thread's maps


def ranges(start: IntArray, size: IntArray) -> tuple[IntArray, IntArray]:
    """Every index of the segments ``[start, start + size)`` and the segment it belongs to."""
    segment = np.repeat(np.arange(len(size)), size)
    shift = np.repeat(start - (np.cumsum(size) - size), size)
    return np.arange(len(segment)) + shift, segment
