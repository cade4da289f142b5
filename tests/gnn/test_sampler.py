"""The sampler keeps its caps, never leaks excluded or future edges, types its hops, and draws
uniformly without replacement among eligible edges (the draw itself: ``test_draws.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gnn.data import GraphData
from gnn.sampler import (
    NeighbourInput,
    SamplerGraph,
    sample_neighbours,
)
from gnn.walks import RandomWalkInput, random_walk_neighbours


def _edges_of(out, rel_filter=None):  # type: ignore[no-untyped-def]
    return np.concatenate(
        [e for rel, e in out.edge.items() if rel_filter is None or rel_filter(rel)]
    )


def test_fanout_caps_hold_per_seed_and_hop(small: GraphData) -> None:
    graph = SamplerGraph.from_data(small)
    seeds = np.arange(40)
    out = sample_neighbours(
        graph, NeighbourInput(actor_seeds=seeds, fanouts=(3, 2)), np.random.default_rng(0)
    )
    hop1 = np.zeros(small.num_actors, np.int64)
    for rel, rows in out.row.items():
        first = out.hop[rel] == 1
        np.add.at(hop1, out.node["actor"][rows[first]], 1)
    assert hop1[seeds].max() <= 3
    assert hop1[seeds].sum() > 0
    degree = np.bincount(small.edges.actor, minlength=small.num_actors)
    assert np.array_equal(hop1[seeds], np.minimum(degree[seeds], 3))  # nothing taken before
    assert list(out.node["actor"][:40]) == list(seeds)  # seeds first


def test_bad_input_is_refused_clearly(small: GraphData) -> None:
    graph = SamplerGraph.from_data(small)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="actor_seeds must lie in"):
        sample_neighbours(graph, NeighbourInput(actor_seeds=np.array([small.num_actors])), rng)
    with pytest.raises(ValueError, match="item_seeds must lie in"):
        sample_neighbours(graph, NeighbourInput(item_seeds=np.array([-1])), rng)
    with pytest.raises(ValueError, match="fanouts must be >= 0"):
        sample_neighbours(graph, NeighbourInput(actor_seeds=np.array([0]), fanouts=(2, -1)), rng)
    with pytest.raises(ValueError, match="item_seeds must lie in"):
        random_walk_neighbours(graph, RandomWalkInput(item_seeds=np.array([10**9])), rng)


def test_an_edge_met_from_both_ends_is_kept_once(small: GraphData) -> None:
    """One hop from an actor and an item that share edges: every edge of either, none twice."""
    graph = SamplerGraph.from_data(small)
    actor, item = int(small.edges.actor[0]), int(small.edges.item[0])
    spec = NeighbourInput(
        actor_seeds=np.array([actor]), item_seeds=np.array([item]), fanouts=(500,)
    )
    out = sample_neighbours(graph, spec, np.random.default_rng(0))
    edges = _edges_of(out)
    both = (small.edges.actor == actor) | (small.edges.item == item)
    assert np.array_equal(np.sort(edges), np.flatnonzero(both))  # all, none twice
    assert ((small.edges.actor == actor) & (small.edges.item == item)).any()  # shared edges


def test_excluded_and_future_edges_never_appear(small: GraphData) -> None:
    graph = SamplerGraph.from_data(small)
    rng = np.random.default_rng(1)
    exclude = rng.choice(len(small.edges), len(small.edges) // 3, replace=False)
    cutoff = float(np.median(small.edges.last_ts))
    spec = NeighbourInput(
        actor_seeds=np.arange(100), fanouts=(5, 5, 5), cutoff=cutoff, exclude=exclude
    )
    out = sample_neighbours(graph, spec, rng)
    used = _edges_of(out)
    assert len(used) > 0
    assert not np.isin(used, exclude).any()
    assert (small.edges.last_ts[used] < cutoff).all()


def test_hops_and_types_are_labelled(small: GraphData) -> None:
    graph = SamplerGraph.from_data(small)
    out = sample_neighbours(
        graph,
        NeighbourInput(actor_seeds=np.array([0, 1]), fanouts=(50, 50)),
        np.random.default_rng(2),
    )
    for rel, edges in out.edge.items():
        assert rel[0] == "actor" and rel[2] == "item"
        behaviour = small.edges.behaviour[edges]
        assert len(set(behaviour.tolist())) == 1  # one relation = one behaviour
        hop1 = out.hop[rel] == 1
        assert set(out.node["actor"][out.row[rel][hop1]].tolist()) <= {0, 1}
    data = out.to_hetero_data()
    assert data["actor"].num_nodes == len(out.node["actor"])


def test_behaviour_filter_keeps_only_those_types(small: GraphData) -> None:
    graph = SamplerGraph.from_data(small)
    spec = NeighbourInput(actor_seeds=np.arange(50), fanouts=(10,), behaviours=(3,))
    out = sample_neighbours(graph, spec, np.random.default_rng(3))
    assert set(out.edge) <= {("actor", "PURCHASED", "item")}


def test_random_walk_weights_rank_most_visited_first(small: GraphData) -> None:
    graph = SamplerGraph.from_data(small)
    seeds = np.arange(10)
    walk = random_walk_neighbours(
        graph, RandomWalkInput(item_seeds=seeds, walks=200, top=5), np.random.default_rng(4)
    )
    for s, row, weights in zip(seeds, walk.neighbours, walk.weights, strict=True):
        kept = row >= 0
        assert s not in row[kept]
        if kept.any():
            assert np.isclose(weights[kept].sum(), 1.0)
            assert np.all(np.diff(weights[kept]) <= 0)


def test_same_seed_same_sample(small: GraphData) -> None:
    graph = SamplerGraph.from_data(small)
    spec = NeighbourInput(actor_seeds=np.arange(30), fanouts=(4, 4))
    a = sample_neighbours(graph, spec, np.random.default_rng(9))
    b = sample_neighbours(graph, spec, np.random.default_rng(9))
    assert np.array_equal(_edges_of(a), _edges_of(b))


def test_filtered_draw_is_uniform_among_eligible_edges(small: GraphData) -> None:
    """With a cut-off and excluded edges, a seed's sample is ``fanout`` distinct eligible
    edges, each as likely as any other."""
    graph = SamplerGraph.from_data(small)
    degree = np.bincount(small.edges.actor, minlength=small.num_actors)
    seed = int(np.argmax(degree))
    mine = np.flatnonzero(small.edges.actor == seed)
    cutoff = float(np.quantile(small.edges.last_ts[mine], 0.8))
    exclude = mine[::4]
    eligible = np.setdiff1d(mine[small.edges.last_ts[mine] < cutoff], exclude)
    k, runs = 5, 4_000
    assert len(eligible) > 2 * k
    spec = NeighbourInput(
        actor_seeds=np.array([seed]), fanouts=(k,), cutoff=cutoff, exclude=exclude
    )
    rng = np.random.default_rng(12)
    counts = np.zeros(len(small.edges), np.int64)
    for _ in range(runs):
        used = _edges_of(sample_neighbours(graph, spec, rng))
        assert len(used) == k and len(np.unique(used)) == k
        counts[used] += 1
    assert counts.sum() == counts[eligible].sum()
    p = k / len(eligible)  # without replacement: chi2 / (1 - p) ~ chi2(df = len - 1)
    observed = counts[eligible]
    statistic = ((observed - runs * p) ** 2 / (runs * p)).sum() / (1 - p)
    assert stats.chi2.sf(statistic, len(eligible) - 1) > 1e-4


def test_sample_is_consistent(small: GraphData) -> None:
    """Local ids point at the edge's own endpoints, no edge twice, hops 1..len(fanouts), seeds
    first (repeats dropped) and every node listed once; the same seed draws the same sample."""
    graph = SamplerGraph.from_data(small)
    actors, items = np.array([3, 1, 3, 7]), np.array([5, 2])
    out = sample_neighbours(
        graph,
        NeighbourInput(actor_seeds=actors, item_seeds=items, fanouts=(4, 3, 2)),
        np.random.default_rng(13),
    )
    assert list(out.node["actor"][:3]) == [3, 1, 7] and list(out.node["item"][:2]) == [5, 2]
    for ids in out.node.values():
        assert len(np.unique(ids)) == len(ids)
    edges = _edges_of(out)
    assert len(np.unique(edges)) == len(edges)
    for rel, e in out.edge.items():
        assert np.array_equal(out.node["actor"][out.row[rel]], small.edges.actor[e])
        assert np.array_equal(out.node["item"][out.col[rel]], small.edges.item[e])
        assert set(out.hop[rel].tolist()) <= {1, 2, 3}
    same = sample_neighbours(
        SamplerGraph.from_data(small),
        NeighbourInput(actor_seeds=actors, item_seeds=items, fanouts=(4, 3, 2)),
        np.random.default_rng(13),
    )
    assert np.array_equal(edges, _edges_of(same))
