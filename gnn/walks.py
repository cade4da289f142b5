"""PinSage's importance neighbourhoods (Ying et al., 2018): short item→actor→item random walks
over the sampler's CSR, keeping the top-T most visited items with visit counts as weights.
The training loop draws hard negatives from them. Compiled with numba, like the sampler."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from gnn.csr import CsrArrays, SamplerGraph, checked_ids
from gnn.data import IntArray
from gnn.draws import below, scratch, seed_from, stream


@dataclass(frozen=True)
class RandomWalkInput:
    item_seeds: IntArray
    walks: int = 50  # walks started per seed
    length: int = 2  # item→actor→item steps per walk
    top: int = 10  # T: neighbours kept per seed


@dataclass(frozen=True)
class ImportanceNeighbours:
    """``neighbours[s]`` are the top-T items visited from seed ``s`` (−1 padded), ``weights[s]``
    their visit counts normalised to sum to 1 (PinSage's importance pooling weights)."""

    seeds: IntArray
    neighbours: IntArray  # [S, T]
    weights: npt.NDArray[np.float64]  # [S, T]


def random_walk_neighbours(
    graph: SamplerGraph, spec: RandomWalkInput, rng: np.random.Generator
) -> ImportanceNeighbours:
    """PinSage (Ying et al., 2018) importance neighbourhoods by item–actor–item walks: the
    items visited most often (the seed itself aside), most visited first, ties by id."""
    seeds = checked_ids(spec.item_seeds, graph.num_items, "item_seeds")
    if spec.walks < 0 or spec.length < 0 or spec.top < 0:
        raise ValueError(f"walks, length and top must be >= 0, got {spec}")
    per_seed = spec.walks * spec.length  # visits at most
    slot, base = scratch.claim("walk", graph.num_items, max(1, len(seeds) * per_seed))
    neighbours, counts = _walk(
        graph.item_to_actor.arrays,
        graph.actor_to_item.arrays,
        seeds,
        spec.walks,
        spec.length,
        spec.top,
        slot,
        base,
        seed_from(rng),
    )
    total = np.maximum(counts.sum(axis=1, keepdims=True), 1)
    return ImportanceNeighbours(seeds, neighbours, counts / total)


@numba.njit(nogil=True, cache=True)
def _walk(
    to_actor: CsrArrays,
    to_item: CsrArrays,
    seeds: IntArray,
    walks: int,
    length: int,
    top: int,
    slot: IntArray,
    base: int,
    seed: int,
) -> tuple[IntArray, IntArray]:
    """The compiled body of ``random_walk_neighbours``: per seed, the top items and their
    visit counts. ``slot`` maps an item to its place in the seed's visit list (values from
    ``base`` on; each seed takes a fresh range of them)."""
    state = stream(seed)
    out = np.full((len(seeds), top), -1, np.int64)
    counts = np.zeros((len(seeds), top), np.int64)
    item_start, actors, actor_shift = to_actor[0], to_actor[1], to_actor[2]
    actor_start, items, item_shift = to_item[0], to_item[1], to_item[2]
    visited = np.empty(walks * length, np.int64)
    visits = np.zeros(walks * length, np.int64)
    for s in range(len(seeds)):
        seed, first, n = seeds[s], base + s * walks * length, 0
        for _ in range(walks):
            at = seed
            for _ in range(length):
                degree = item_start[at + 1] - item_start[at]
                if degree == 0:
                    break
                actor = actors[item_start[at] + below(state, degree)] >> actor_shift
                degree = actor_start[actor + 1] - actor_start[actor]
                if degree == 0:
                    break
                at = items[actor_start[actor] + below(state, degree)] >> item_shift
                if at == seed:
                    continue
                if slot[at] < first:
                    slot[at] = first + n
                    visited[n], visits[n] = at, 0
                    n += 1
                visits[slot[at] - first] += 1
        order = np.argsort(-visits[:n] * (len(slot) + 1) + visited[:n], kind="mergesort")
        for j in range(min(top, n)):
            out[s, j], counts[s, j] = visited[order[j]], visits[order[j]]
    return out, counts
