"""The GraphStore protocol: public methods validate, backends implement the private half."""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, Self, TypeVar

from graphstore.snapshot import CsrSnapshot, Neighbourhood
from graphstore.types import (
    ALL_RELATIONSHIPS,
    ApplyResult,
    Behaviour,
    DedupWindow,
    Interaction,
    ItemRecord,
    NodeKind,
    NodeRef,
    Position,
    StoreStats,
    TopicPartition,
)

T = TypeVar("T", Interaction, ItemRecord)

MAX_ID_LENGTH = 256
MAX_HOPS = 4
MAX_FANOUT = 10_000
MAX_SEEDS = 10_000
MAX_CLOCK_SKEW_S = 24 * 3600.0  # a timestamp further in the future than this is a clock bug


class GraphStoreError(Exception):
    """Base class for graph store errors."""


class InvalidInput(GraphStoreError, ValueError):
    """A caller passed something the store cannot accept; the message says what."""


class InvalidId(InvalidInput):
    """An id that is empty (``reason == "empty"``) or too long (``reason == "too-long"``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Positioned(Generic[T]):
    """A record with the log position it came from (``None`` for direct writes)."""

    value: T
    position: Position | None = None


@dataclass(frozen=True)
class Batch:
    """What the sink hands to ``GraphStore.apply`` in one transaction.

    ``consumed`` is the highest offset read per (topic, partition), including records
    that were dead-lettered, so the watermark moves past them too. With ``dedup``, an
    interaction whose ``event_id`` was accepted before (within the window, or earlier in this
    batch) is dropped, and the ids accepted are remembered in the same transaction;
    ``ingested_at`` is the ingest time the window is measured in (default: the clock at
    ``apply``). An empty ``event_id`` is never deduplicated.
    """

    interactions: Sequence[Positioned[Interaction]] = ()
    items: Sequence[Positioned[ItemRecord]] = ()
    consumed: Mapping[TopicPartition, int] = field(default_factory=dict)
    dedup: DedupWindow | None = None
    ingested_at: float | None = None

    def __len__(self) -> int:
        return len(self.interactions) + len(self.items)

    def new_watermarks(self) -> dict[TopicPartition, int]:
        """Highest position per partition over ``consumed`` and every record's position."""
        marks = dict(self.consumed)
        positions = [r.position for r in self.interactions] + [r.position for r in self.items]
        for p in positions:
            if p is not None:
                tp = (p.topic, p.partition)
                marks[tp] = max(marks.get(tp, -1), p.offset)
        return marks

    def unseen(
        self, marks: Mapping[TopicPartition, int]
    ) -> tuple[list[Interaction], list[ItemRecord]]:
        """The records not yet applied: no position, or a position above the watermark."""

        def fresh(p: Position | None) -> bool:
            return p is None or p.offset > marks.get((p.topic, p.partition), -1)

        return (
            [r.value for r in self.interactions if fresh(r.position)],
            [r.value for r in self.items if fresh(r.position)],
        )


class GraphStore(abc.ABC):
    """A user–item–category graph fed by behaviour events.

    Contract (checked by ``tests/contract``, run against every backend):

    * ``apply`` is atomic: the batch and the new watermark commit together or not at all.
    * A record whose position is at or below the stored watermark of its partition is
      skipped, so replaying a batch has no effect (exactly-once effect over at-least-once
      delivery).
    * Interaction edges keep commutative aggregates ``{count, first_ts, last_ts}``: any
      order of the same events gives the same graph.
    * Item upserts are last-writer-wins by ``ts``.
    * With ``Batch.dedup``, an event id is applied at most once within the window (see
      ``DedupWindow``); the remembered ids are kept in the store, committed with the batch.
    """

    url: str = ""

    # ------------------------------------------------------------------ writes
    def apply(self, batch: Batch) -> ApplyResult:
        """Write a batch of interactions and item upserts with its watermark, atomically."""
        for rec in batch.interactions:
            _check_interaction(rec.value)
            _check_position(rec.position)
        for item in batch.items:
            _check_item(item.value)
            _check_position(item.position)
        for (topic, partition), offset in batch.consumed.items():
            _check_position(Position(topic, partition, offset))
        _check_dedup(batch)
        if not len(batch) and not batch.consumed:
            return ApplyResult(0, 0)
        return self._apply(batch)

    def add_interactions(self, interactions: Iterable[Interaction]) -> ApplyResult:
        """Write interactions that did not come from a log (no watermark involved)."""
        return self.apply(Batch(interactions=[Positioned(i) for i in interactions]))

    def upsert_items(self, items: Iterable[ItemRecord]) -> ApplyResult:
        """Create or update catalogue items (and their category paths) directly."""
        return self.apply(Batch(items=[Positioned(i) for i in items]))

    # ------------------------------------------------------------------ reads
    def watermarks(self) -> dict[TopicPartition, int]:
        """Highest applied offset per (topic, partition)."""
        return self._watermarks()

    def neighbourhood(
        self,
        seeds: Sequence[NodeRef],
        fanouts: Sequence[int],
        relationships: Sequence[str] | None = None,
        before: float | None = None,
    ) -> Neighbourhood:
        """The typed k-hop neighbourhood of ``seeds``, ``k = len(fanouts)``.

        Traversal ignores edge direction. At hop ``h`` each frontier node keeps at most
        ``fanouts[h]`` of its edges, most recent ``last_ts`` first, so a dense node never
        blows up the result. ``relationships`` restricts edge types; ``before`` keeps only
        edges whose ``first_ts`` is earlier.
        """
        if not seeds:
            raise InvalidInput("neighbourhood needs at least one seed")
        if len(seeds) > MAX_SEEDS:
            raise InvalidInput(f"at most {MAX_SEEDS} seeds, got {len(seeds)}")
        if not 1 <= len(fanouts) <= MAX_HOPS:
            raise InvalidInput(f"fanouts must name 1 to {MAX_HOPS} hops, got {len(fanouts)}")
        if any(not 0 < f <= MAX_FANOUT for f in fanouts):
            raise InvalidInput(f"every fan-out must be in 1..{MAX_FANOUT}, got {list(fanouts)}")
        for seed in seeds:
            check_id("seed id", seed.key)
        rels = tuple(ALL_RELATIONSHIPS if relationships is None else relationships)
        unknown = set(rels) - set(ALL_RELATIONSHIPS)
        if unknown:
            raise InvalidInput(f"unknown relationship types {sorted(unknown)}")
        if before is not None and not math.isfinite(before):
            raise InvalidInput("before must be a finite timestamp")
        return self._neighbourhood(tuple(seeds), tuple(fanouts), rels, before)

    def snapshot(self, before: float | None = None) -> CsrSnapshot:
        """The whole graph as CSR arrays; with ``before``, only edges first seen earlier."""
        if before is not None and not math.isfinite(before):
            raise InvalidInput("before must be a finite timestamp")
        return self._snapshot(before)

    def stats(self) -> StoreStats:
        """Node and edge counts and watermarks."""
        return self._stats()

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Delete every node, edge and watermark: the store is as new (for demos, tests and
        benchmarks). Not atomic on every backend; a store being written to meanwhile may keep
        some of those writes."""
        self._reset()

    def close(self) -> None:
        """Release connections and files; the store is unusable afterwards."""
        self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ backends
    @abc.abstractmethod
    def _apply(self, batch: Batch) -> ApplyResult: ...

    @abc.abstractmethod
    def _watermarks(self) -> dict[TopicPartition, int]: ...

    @abc.abstractmethod
    def _neighbourhood(
        self,
        seeds: tuple[NodeRef, ...],
        fanouts: tuple[int, ...],
        relationships: tuple[str, ...],
        before: float | None,
    ) -> Neighbourhood: ...

    @abc.abstractmethod
    def _snapshot(self, before: float | None) -> CsrSnapshot: ...

    @abc.abstractmethod
    def _stats(self) -> StoreStats: ...

    @abc.abstractmethod
    def _reset(self) -> None: ...

    @abc.abstractmethod
    def _close(self) -> None: ...


def category_keys(path: Sequence[str]) -> list[str]:
    """Category node keys for a root→leaf path: each key is the path prefix joined by '/'.

    ``["a", "b"]`` → ``["a", "a/b"]``, so equal names under different parents stay apart.
    """
    return ["/".join(path[: i + 1]) for i in range(len(path))]


def check_id(what: str, value: str) -> str:
    """Return ``value`` if it can be a node id; else raise ``InvalidId`` naming ``what``.

    The one id rule of graphrec: the sink, the gRPC service and the store all apply it, so a
    record that passes one cannot fail another. Blank counts as empty.
    """
    if not value or not value.strip():
        raise InvalidId(f"{what} is empty", "empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidId(f"{what} is longer than {MAX_ID_LENGTH} characters", "too-long")
    return value


def _check_interaction(i: Interaction) -> None:
    if i.actor.kind not in (NodeKind.USER, NodeKind.SESSION):
        raise InvalidInput(f"actor must be a User or Session, got {i.actor.kind}")
    check_id(f"{i.actor.kind.value} id", i.actor.key)
    check_id("item id", i.item_id)
    if not isinstance(i.behaviour, Behaviour):
        raise InvalidInput(f"unknown behaviour {i.behaviour!r}")
    if not math.isfinite(i.ts):
        raise InvalidInput("timestamp must be finite")


def _check_item(item: ItemRecord) -> None:
    check_id("item id", item.item_id)
    for name in item.category_path:
        check_id("category name", name)
        if "/" in name:
            raise InvalidInput(f"category name {name!r} contains '/'")
    if not math.isfinite(item.ts):
        raise InvalidInput("timestamp must be finite")
    for name, value in item.numeric_features:
        if not math.isfinite(value):
            raise InvalidInput(f"feature {name!r} is not a finite number")


def first_sightings(interactions: Iterable[Interaction], seen: Set[str]) -> list[Interaction]:
    """The interactions whose event id is not in ``seen`` and not repeated from earlier in
    the sequence (the first one wins); an empty event id is always kept."""
    out: list[Interaction] = []
    taken: set[str] = set()
    for i in interactions:
        if i.event_id:
            if i.event_id in seen or i.event_id in taken:
                continue
            taken.add(i.event_id)
        out.append(i)
    return out


def _check_dedup(batch: Batch) -> None:
    window = batch.dedup
    if window is not None and not (window.max_age_s > 0 and window.max_ids > 0):
        raise InvalidInput(f"a dedup window needs positive bounds, got {window}")
    if batch.ingested_at is not None and not math.isfinite(batch.ingested_at):
        raise InvalidInput("ingested_at must be a finite timestamp")


def _check_position(p: Position | None) -> None:
    if p is None:
        return
    if not p.topic or p.partition < 0 or p.offset < 0:
        raise InvalidInput(f"invalid log position {p}")
