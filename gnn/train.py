"""Training with early stopping on a validation split.

The default loss is a softmax over all items (full graph; no negatives are drawn) or over the
batch's candidates (sampled neighbourhoods: its positives, uniform random items and hard
negatives). BPR and max-margin (``TrainConfig.loss``) score each positive against one
negative: uniform random, a share of them growing on a curriculum to ``hard_negative_share``
replaced by hard ones (highly scored items in full mode, items that random walks from the
positive visit most in sampled mode).

``GnnRecommender`` wraps either model behind the scoring interface of ``gnn.baselines`` so
evaluation treats GNNs and baselines alike.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from gnn.baselines import ScoreMatrix
from gnn.data import GraphData, IntArray, Interactions
from gnn.distributed import SINGLE, Group
from gnn.evaluate import evaluate
from gnn.inputs import to_graph
from gnn.minibatch import PairSampler
from gnn.models import Graph, LightGCN, LightGCNConfig, SageConfig, SageRec
from gnn.splits import Split, distinct_pairs, make_split, sample_actors

log = logging.getLogger(__name__)

TRAINING_MODES = ("auto", "full", "sampled")
SUPERVISION = ("random", "temporal")


@dataclass(frozen=True)
class TrainConfig:
    model: str = "sage"  # "sage" (inductive, default) or "lightgcn"
    epochs: int = 60  # upper bound; early stopping usually ends sooner
    batch_size: int = 2_048  # positive pairs per step
    lr: float = 3e-3
    l2: float = 1e-5  # weight decay
    loss: str = "softmax"  # "softmax" over all items, "bpr" (Rendle et al., 2009) or "margin"
    margin: float = 0.5  # for the max-margin loss
    supervision: str = "random"  # sage, full: which pairs each epoch predicts from the rest:
    # "random" (a supervision_share of them) or "temporal" (each actor's pairs after a random
    # point of its history: learn what comes next, as a deployed recommender must)
    supervision_share: float = 0.5  # random supervision: pairs held out of message passing
    mode: str = "auto"  # sage: "full" graph per step, "sampled" neighbourhoods, or "auto"
    full_graph_edges: int = 1_000_000  # auto: sampled above this many training edges
    fanout: int = 10  # sampled: neighbours drawn per node and hop
    negatives: int = 1_024  # sampled: uniform random candidate items per batch
    hard_negative_share: float = 0.3  # final share of hard negatives (curriculum from 0)
    hard_rank: tuple[int, int] = (10, 100)  # full, bpr/margin: hard negatives' score ranks
    validation_share: float = 0.1  # of training pairs, for early stopping
    validation_actors: int = 20_000  # early stopping ranks every item for at most this many
    # held-out actors (a seeded sample): an evaluation costs O(actors × items)
    steps_per_epoch: int = 0  # at most this many optimiser steps per epoch, each on a fresh
    # random batch (0: one pass over every training pair)
    target: tuple[int, ...] = ()  # behaviours early stopping validates on (empty: any)
    eval_every: int = 2
    patience: int = 5  # evaluations without improvement before stopping
    seed: int = 0
    device: str = "auto"  # "cuda" when available, else "cpu"
    sage: SageConfig = field(default_factory=SageConfig)
    lightgcn: LightGCNConfig = field(default_factory=LightGCNConfig)


def pick_device(name: str = "auto") -> torch.device:
    """``cuda`` when present (and asked for or auto), otherwise CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def after_random_point(actor: IntArray, ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``[P]`` mask: per actor with two or more pairs, those after a uniformly drawn point of
    its history (at least one pair on either side); actors with one pair get none."""
    order = np.lexsort((ts, actor))
    a = actor[order]
    starts = np.flatnonzero(np.r_[True, a[1:] != a[:-1]]) if len(a) else np.array([], np.int64)
    sizes = np.diff(np.r_[starts, len(a)])
    first_target = 1 + (rng.random(len(sizes)) * np.maximum(sizes - 1, 0)).astype(np.int64)
    rank = np.arange(len(a)) - np.repeat(starts, sizes)
    out = np.zeros(len(actor), bool)
    out[order] = (rank >= np.repeat(first_target, sizes)) & np.repeat(sizes >= 2, sizes)
    return out


def pair_loss(pos: Tensor, neg: Tensor, config: TrainConfig) -> Tensor:
    """BPR: −log σ(s⁺ − s⁻); max-margin: max(0, m − s⁺ + s⁻)."""
    if config.loss == "bpr":
        return -F.logsigmoid(pos - neg).mean()
    if config.loss == "margin":
        return F.relu(config.margin - pos + neg).mean()
    raise ValueError(f"unknown loss {config.loss!r}: bpr or margin")


class GnnRecommender:
    """Trains a GNN on a split's training edges and scores with the learned embeddings.

    SageRec trains on the full graph each step (small graphs: every item is a softmax
    candidate) or on sampled neighbourhoods (``gnn.minibatch``: a step costs O(batch), not
    O(graph)); ``TrainConfig.mode`` picks, ``auto`` by the number of training edges."""

    def __init__(
        self, config: TrainConfig, on_epoch: Callable[[int, dict[str, float]], None] | None = None
    ) -> None:
        self.config = config
        self.group = SINGLE
        self.name = config.model if config.sage.behaviour_typed else f"{config.model}-merged"
        self.device = pick_device(config.device)
        self.history: list[dict[str, float]] = []
        self._on_epoch = on_epoch

    def fit(self, data: GraphData, train: Interactions, seed: int, group: Group = SINGLE) -> None:
        """Train on ``train`` with early stopping; in a ``group`` (torchrun), as one of its
        ranks (``gnn.distributed``): only rank 0 evaluates and holds the final embeddings."""
        seed_everything(seed)
        self.group = group
        self.known_items = np.zeros(data.num_items, bool)
        self.known_items[train.item] = True  # items without training edges get no ID embedding
        if self.config.supervision not in SUPERVISION:
            raise ValueError(
                f"unknown supervision {self.config.supervision!r}: {', '.join(SUPERVISION)}"
            )
        inner = make_split(
            data.with_edges(train),
            "random" if self.config.supervision == "random" else "temporal",
            seed,
            self.config.validation_share,
            tuple(self.config.target),
        )
        validation = sample_actors(inner, self.config.validation_actors, seed)
        self.model = self._build(data)
        self._forward = self.group.wrap(self.model)  # training steps run through it
        self._sampler = self._pair_sampler(data, inner.train)
        best, best_state, waited = -1.0, None, 0
        opt = torch.optim.Adam(
            self.model.parameters(), lr=self.config.lr, weight_decay=self.config.l2
        )
        rng = np.random.default_rng(seed)
        self._step_rng = self.group.step_rng(rng, seed)
        for epoch in range(1, self.config.epochs + 1):
            started = time.perf_counter()
            loss = self._epoch(data, inner.train, opt, rng, epoch)
            epoch_s = time.perf_counter() - started  # the epoch's steps, not its evaluation
            if epoch % self.config.eval_every and epoch != self.config.epochs:
                continue
            metric = self.group.from_leader(lambda: self._validate(data, inner.train, validation))
            self.history.append(
                {"epoch": epoch, "loss": loss, "epoch_s": epoch_s, "val_recall@20": metric}
            )
            if self._on_epoch is not None:
                self._on_epoch(epoch, self.history[-1])
            if metric > best:
                best, waited = metric, 0
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                waited += 1
                if waited >= self.config.patience:
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.best_validation = best
        if self.group.leader:  # the others only helped train
            self._embed(data, train)

    def _validate(self, data: GraphData, train: Interactions, validation: Split) -> float:
        """Recall@20 on the validation split, embedding over its training edges."""
        self._embed(data, train)
        return evaluate(self, data, validation)["recall@20"]

    def sampled(self, num_edges: int) -> bool:
        """Whether training steps run on sampled neighbourhoods (SageRec only)."""
        mode = self.config.mode
        if mode not in TRAINING_MODES:
            raise ValueError(f"unknown training mode {mode!r}: {', '.join(TRAINING_MODES)}")
        if self.config.model != "sage" or mode == "full":
            return False
        return mode == "sampled" or num_edges > self.config.full_graph_edges

    def _pair_sampler(self, data: GraphData, train: Interactions) -> PairSampler | None:
        """Sampled mode's mini-batches over ``train`` (None in full mode)."""
        if not self.sampled(len(train)):
            return None
        if self.config.supervision != "random":
            raise ValueError(
                "temporal supervision needs mode 'full' (sampled steps supervise every pair)"
            )
        return PairSampler(
            data,
            train,
            self.known_items,
            self.config.sage.behaviour_typed,
            self.config.sage.half_life_days,
            self.config.fanout,
            self.device,
        )

    def _build(self, data: GraphData) -> torch.nn.Module:
        if self.config.model == "sage":
            model: torch.nn.Module = SageRec(
                self.config.sage, data.num_categories, data.item_features.shape[1], data.num_items
            )
        elif self.config.model == "lightgcn":
            model = LightGCN(self.config.lightgcn, data.num_actors, data.num_items)
        else:
            raise ValueError(f"unknown model {self.config.model!r}: sage or lightgcn")
        return model.to(self.device)

    def _epoch(
        self,
        data: GraphData,
        train: Interactions,
        opt: torch.optim.Optimizer,
        rng: np.random.Generator,
        epoch: int,
    ) -> float:
        """One pass over the training pairs; returns the mean loss."""
        self.model.train()
        hard_share = self.config.hard_negative_share * min(
            1.0, (epoch - 1) / max(1, self.config.epochs // 2)
        )
        if self._sampler is not None:
            return self._sampled_epoch(self._sampler, opt, rng, hard_share)
        pairs, graph = self._epoch_graph(data, train, rng)
        losses = []
        for batch in self._batches(len(pairs), rng):
            part = pairs[self.group.share(batch)]
            losses.append(self._full_step(data, graph, part, opt, self._step_rng, hard_share))
        return float(np.mean(losses))

    def _batches(self, num_pairs: int, rng: np.random.Generator) -> list[IntArray]:
        """An epoch's batches of pair indices: a random permutation in ``batch_size`` parts,
        the first ``steps_per_epoch`` of them when that is set."""
        batches = np.array_split(
            rng.permutation(num_pairs), max(1, num_pairs // self.config.batch_size)
        )
        steps = self.config.steps_per_epoch
        return batches[:steps] if steps > 0 else batches

    def _epoch_graph(
        self, data: GraphData, train: Interactions, rng: np.random.Generator
    ) -> tuple[IntArray, Graph | None]:
        """An epoch's ``[P, 2]`` supervision pairs and SageRec's message-passing graph without
        them (LightGCN: every pair, its graph set on the model, None)."""
        pair_actor, pair_item, pair_ts = distinct_pairs(train)
        pairs = np.stack([pair_actor, pair_item], axis=1)
        if not isinstance(self.model, SageRec):
            self.model.set_graph(torch.as_tensor(train.actor), torch.as_tensor(train.item))  # type: ignore[operator]
            return pairs, None
        # Supervision pairs never appear in the message-passing graph of the same epoch.
        if self.config.supervision == "temporal":
            sup = after_random_point(pair_actor, pair_ts, rng)
        else:
            sup = rng.random(len(pairs)) < self.config.supervision_share
        edge_pair = train.actor.astype(np.int64) * data.num_items + train.item
        keep = ~np.isin(edge_pair, pairs[sup, 0].astype(np.int64) * data.num_items + pairs[sup, 1])
        graph = to_graph(
            data,
            train.take(keep),
            self.config.sage.behaviour_typed,
            self.config.sage.half_life_days,
            self.device,
            self.known_items,
        )
        return pairs[sup], graph

    def _full_step(
        self,
        data: GraphData,
        graph: Graph | None,
        pairs: IntArray,
        opt: torch.optim.Optimizer,
        rng: np.random.Generator,
        hard_share: float,
    ) -> float:
        """One optimiser step on ``[B, 2]`` pairs over the whole graph; returns its loss."""
        a = torch.as_tensor(pairs[:, 0], device=self.device)
        i = torch.as_tensor(pairs[:, 1], device=self.device)
        if graph is not None:
            drop = torch.rand(data.num_items, device=self.device) < self.config.sage.id_dropout
            h, z = self._forward(graph, drop)
        else:
            h, z = self._forward()
        # index_select, not h[a]: indexing's backward accumulates in a thread-dependent order
        h_a = h.index_select(0, a)
        neg = None if self.config.loss == "softmax" else self._negatives(h_a, z, hard_share, rng)
        loss = self._loss(h_a, z, i, neg)
        if isinstance(self.model, LightGCN):
            ego = self.model.embedding.weight
            loss = loss + 1e-4 * (
                ego.index_select(0, a).pow(2).sum()
                + ego.index_select(0, self.model.num_actors + i).pow(2).sum()
            ) / len(pairs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    def _sampled_epoch(
        self,
        sampler: PairSampler,
        opt: torch.optim.Optimizer,
        rng: np.random.Generator,
        hard_share: float,
    ) -> float:
        """One pass over the training pairs, each step on the batch's sampled neighbourhood."""
        losses = []
        for batch in self._batches(sampler.num_pairs, rng):
            part = self.group.share(batch)
            b = sampler.batch(part, self.config.negatives, hard_share, self._step_rng)
            drop = torch.rand(b.graph.num_items, device=self.device) < self.config.sage.id_dropout
            h, z = self._forward(b.graph, drop)
            neg = None if self.config.loss == "softmax" else b.negative
            loss = self._loss(
                h.index_select(0, b.actor), z.index_select(0, b.candidates), b.label, neg
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return float(np.mean(losses))

    def _loss(self, h: Tensor, z: Tensor, positive: Tensor, negative: Tensor | None) -> Tensor:
        """Mean loss of pairs ``h[k]`` → ``z[positive[k]]``: softmax over all of ``z``, or
        BPR/margin against ``z[negative[k]]``."""
        if negative is None:
            return F.cross_entropy(h @ z.T, positive)
        pos, neg = z.index_select(0, positive), z.index_select(0, negative)
        return pair_loss((h * pos).sum(-1), (h * neg).sum(-1), self.config)

    def _negatives(
        self, h: Tensor, z: Tensor, hard_share: float, rng: np.random.Generator
    ) -> Tensor:
        """Uniform random items, a ``hard_share`` of them replaced by highly scored ones."""
        n, num_items = h.shape[0], z.shape[0]
        neg = torch.as_tensor(rng.integers(0, num_items, n), device=self.device)
        n_hard = int(n * hard_share)
        lo, hi = self.config.hard_rank
        if n_hard and num_items > hi:
            with torch.no_grad():
                top = torch.topk(h[:n_hard] @ z.T, hi, dim=1).indices
            pick = torch.as_tensor(rng.integers(lo, hi, n_hard), device=self.device)
            neg[:n_hard] = top[torch.arange(n_hard, device=self.device), pick]
        return neg

    @torch.no_grad()
    def _embed(self, data: GraphData, edges: Interactions) -> None:
        self.model.eval()
        if isinstance(self.model, SageRec):
            graph = to_graph(
                data,
                edges,
                self.config.sage.behaviour_typed,
                self.config.sage.half_life_days,
                self.device,
                self.known_items,
            )
            self.model.remember_categories(graph)
            h, z = self.model(graph)
        else:
            self.model.set_graph(torch.as_tensor(edges.actor), torch.as_tensor(edges.item))  # type: ignore[operator]
            h, z = self.model()
        self._actors, self._items = h.cpu().numpy(), z.cpu().numpy()

    def score(self, actors: IntArray) -> ScoreMatrix:
        return np.asarray(self._actors[actors] @ self._items.T, np.float32)
