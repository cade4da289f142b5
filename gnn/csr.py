"""The sampler's graph: both directions of the actor–item bipartite graph as CSR arrays whose
records pack neighbour, edge id and behaviour, built once per snapshot (``SamplerGraph``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from gnn.data import BEHAVIOURS, GraphData, IntArray

CsrArrays = tuple[IntArray, npt.NDArray[np.signedinteger[Any]], int, npt.NDArray[np.float64]]
BEHAVIOUR_BITS = max(1, (len(BEHAVIOURS) - 1).bit_length())


@dataclass(frozen=True)
class Csr:
    """Adjacency of one direction: the neighbours of node ``v`` sit at positions
    ``indptr[v] .. indptr[v+1] - 1``; ``ts[p]`` is the last-seen time of position ``p``'s edge.

    ``record[p]`` packs the neighbour, global edge id and behaviour index of position ``p``
    into one integer (``neighbour << shift | edge << BEHAVIOUR_BITS | behaviour``), int32
    when they fit in 31 bits: reading a drawn edge then costs one random memory access in
    an array as small as the neighbour ids alone, as it does for a bare CSR gather."""

    indptr: IntArray
    record: npt.NDArray[np.signedinteger[Any]]
    shift: int
    ts: npt.NDArray[np.float64]

    @classmethod
    def build(
        cls,
        src: IntArray,
        dst: IntArray,
        n_src: int,
        n_dst: int,
        behaviour: IntArray,
        ts: npt.NDArray[np.float64],
    ) -> Csr:
        order = np.lexsort((dst, src))
        indptr = np.zeros(n_src + 1, np.int64)
        np.cumsum(np.bincount(src, minlength=n_src), out=indptr[1:])
        shift = BEHAVIOUR_BITS + max(1, len(order).bit_length())
        if shift + max(1, n_dst).bit_length() > 63:
            raise ValueError(
                f"{len(order)} edges to {n_dst} nodes do not fit the sampler's records"
            )
        record = (
            (dst[order].astype(np.int64) << shift) | (order << BEHAVIOUR_BITS) | behaviour[order]
        )
        if shift + max(1, n_dst).bit_length() <= 31:
            record = record.astype(np.int32)
        return cls(indptr, record, shift, ts[order].astype(np.float64))

    @property
    def indices(self) -> IntArray:
        """Neighbour at each position, decoded from the records (O(E): not for hot paths)."""
        return (self.record >> self.shift).astype(np.int64)

    def widened(self) -> Csr:
        """The same adjacency with int64 records."""
        return replace(self, record=self.record.astype(np.int64))

    @property
    def arrays(self) -> CsrArrays:
        """The fields as one tuple, as the compiled loops take them."""
        return self.indptr, self.record, self.shift, self.ts


@dataclass(frozen=True)
class SamplerGraph:
    """Both directions of the bipartite graph, built once per snapshot."""

    actor_to_item: Csr
    item_to_actor: Csr
    num_actors: int
    num_items: int

    @classmethod
    def from_data(cls, data: GraphData) -> SamplerGraph:
        e = data.edges
        a, i = data.num_actors, data.num_items
        to_item = Csr.build(e.actor, e.item, a, i, e.behaviour, e.last_ts)
        to_actor = Csr.build(e.item, e.actor, i, a, e.behaviour, e.last_ts)
        if to_item.record.dtype != to_actor.record.dtype:  # the compiled loops take one type
            to_item, to_actor = to_item.widened(), to_actor.widened()
        return cls(to_item, to_actor, a, i)

    @property
    def num_edges(self) -> int:
        return len(self.actor_to_item.record)


def checked_ids(ids: IntArray, n: int, name: str) -> IntArray:
    """``ids`` as int64, each in ``[0, n)`` (the compiled loops do not check bounds)."""
    ids = np.asarray(ids, np.int64)
    bad = _first_outside(ids, n) if len(ids) else -1
    if bad >= 0:
        raise ValueError(f"{name} must lie in [0, {n}), got {ids[bad]} at index {bad}")
    return ids


@numba.njit(nogil=True, cache=True)
def _first_outside(ids: IntArray, n: int) -> int:
    """Index of the first id outside ``[0, n)``, or -1."""
    for i in range(len(ids)):
        if ids[i] < 0 or ids[i] >= n:
            return i
    return -1
