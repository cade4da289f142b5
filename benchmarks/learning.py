"""Benchmarks for the learning half, each beside a raw baseline measured in the same run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import torch

from gnn.data import GraphData
from gnn.datasets import SyntheticConfig, generate, load_ml100k
from gnn.experiment import graph_of
from gnn.models import LightGCN, LightGCNConfig
from gnn.sampler import NeighbourInput, SamplerGraph, sample_neighbours
from gnn.train import TrainConfig


def load_graph(dataset: str) -> GraphData:
    """The graph of ``ml-100k`` or of ``synthetic`` (the generator's defaults)."""
    if dataset == "ml-100k":
        return graph_of(load_ml100k())
    if dataset == "synthetic":
        return graph_of(generate(SyntheticConfig()))
    raise ValueError(f"unknown dataset {dataset!r}: ml-100k or synthetic")


def bench_sample(
    data: GraphData, seeds: int = 512, fanout: int = 10, rounds: int = 20, repeats: int = 5
) -> dict[str, object]:
    """One-hop sampled neighbours/s (fan-out ``fanout``) beside a raw numpy CSR gather of the
    same seeds: ``fanout`` uniformly random CSR positions per seed (all of a smaller node's),
    gathered in one vectorised step, with none of the sampler's bookkeeping (no draw without
    replacement, no filters, no relabelling, no typed subgraph output).

    Each of ``repeats`` passes times both over the same ``rounds`` batches, one after the
    other; each side keeps its best pass (the machine is shared, so a single pass mostly
    measures the neighbours' load). The headline is at ``seeds`` per batch; ``trainer_batch``
    repeats it at the trainer's batch size (``TrainConfig.batch_size`` seeds, at most every
    actor). In sampled training (``TrainConfig.mode``; ``auto`` above 1M training edges) each
    step samples three hops from a batch's actors and two from its items with these calls."""
    graph = SamplerGraph.from_data(data)
    out: dict[str, object] = {"bench": "sample", "seeds": min(seeds, data.num_actors)}
    out.update(_sample_rates(graph, data, seeds, fanout, rounds, repeats))
    out["goal"] = ">= 0.7"
    batch = TrainConfig().batch_size
    out["trainer_batch"] = {
        "seeds": min(batch, data.num_actors),
        **_sample_rates(graph, data, batch, fanout, rounds, repeats),
    }
    out["note"] = "sampled training (mode sampled, auto above 1M edges) calls this sampler"
    return out


def _sample_rates(
    graph: SamplerGraph, data: GraphData, seeds: int, fanout: int, rounds: int, repeats: int
) -> dict[str, object]:
    rng = np.random.default_rng(0)
    batches = [
        rng.choice(data.num_actors, min(seeds, data.num_actors), replace=False)
        for _ in range(rounds)
    ]
    indptr = graph.actor_to_item.indptr
    indices = np.ascontiguousarray(graph.actor_to_item.indices)  # a plain CSR, as numpy has it
    raw_rate = rate = 0.0
    for _ in range(repeats):
        started, gathered = time.perf_counter(), 0
        for batch in batches:
            start = indptr[batch]
            degree = indptr[batch + 1] - start
            draws = np.where(
                degree[:, None] <= fanout,
                np.arange(fanout)[None, :],
                (rng.random((len(batch), fanout)) * degree[:, None]).astype(np.int64),
            )
            keep = np.arange(fanout)[None, :] < np.minimum(degree, fanout)[:, None]
            gathered += len(indices[(start[:, None] + draws)[keep]])
        raw_rate = max(raw_rate, gathered / (time.perf_counter() - started))
        started, sampled = time.perf_counter(), 0
        for batch in batches:
            sampled += sample_neighbours(
                graph, NeighbourInput(actor_seeds=batch, fanouts=(fanout,)), rng
            ).num_sampled_edges
        rate = max(rate, sampled / (time.perf_counter() - started))
    return {
        "fanout": fanout,
        "sampled_neighbours_per_s": round(rate),
        "raw_csr_gather_per_s": round(raw_rate),
        "ratio": round(rate / raw_rate, 3),
        # per pass: both sides must fetch the same neighbours for the ratio to compare them
        "sampled_neighbours": sampled,
        "raw_gathered_neighbours": gathered,
    }


def bench_train(
    data: GraphData, epochs: int = 3, batch_size: int = 2_048, steps: int = 0
) -> dict[str, object]:
    """LightGCN epoch time (our module) beside a bare sparse-matmul LightGCN loop, same work;
    ``steps`` > 0: each epoch only its first ``steps`` steps (a step propagates over the whole
    graph, so a full epoch costs O(edges²))."""
    actor, item = torch.as_tensor(data.edges.actor), torch.as_tensor(data.edges.item)
    model = LightGCN(LightGCNConfig(), data.num_actors, data.num_items)
    model.set_graph(actor, item)
    timing = (data, epochs, batch_size, steps)
    ours = _time_epochs(lambda: model(), model.parameters(), actor, item, *timing)
    adjacency = model.adjacency
    assert adjacency is not None
    emb = torch.nn.Parameter(torch.randn(data.num_actors + data.num_items, 64) * 0.1)

    def bare() -> tuple[torch.Tensor, torch.Tensor]:
        e: torch.Tensor = emb
        total: torch.Tensor = emb
        for _ in range(3):
            e = adjacency @ e
            total = total + e
        out = total / 4
        return out[: data.num_actors], out[data.num_actors :]

    raw = _time_epochs(bare, [emb], actor, item, *timing)
    return {
        "bench": "train",
        "model": "lightgcn",
        "epoch_s": round(ours, 3),
        "bare_sparse_matmul_epoch_s": round(raw, 3),
        "ratio": round(ours / raw, 3),
        "goal": "<= 1.5",
    }


def _time_epochs(
    forward: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    params: Iterable[torch.nn.Parameter],
    actor: torch.Tensor,
    item: torch.Tensor,
    data: GraphData,
    epochs: int,
    batch_size: int,
    steps: int = 0,
) -> float:
    opt = torch.optim.Adam(params, lr=1e-3)
    rng = np.random.default_rng(0)
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        batches = np.array_split(rng.permutation(len(actor)), max(1, len(actor) // batch_size))
        for batch in batches[:steps] if steps > 0 else batches:
            h, z = forward()
            a, i = actor[batch], item[batch]
            neg = torch.as_tensor(rng.integers(0, data.num_items, len(batch)))
            loss = -torch.nn.functional.logsigmoid(
                (h[a] * z[i]).sum(-1) - (h[a] * z[neg]).sum(-1)
            ).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - started)
    return float(np.median(times))
