"""Domain types shared by every GraphStore backend and its callers.

These are plain frozen dataclasses, independent of protobuf: the streaming sink
decodes wire records into them, datasets generate them directly.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


class NodeKind(enum.StrEnum):
    """Node labels in the graph (also the Neo4j labels)."""

    USER = "User"
    SESSION = "Session"
    ITEM = "Item"
    CATEGORY = "Category"


class Behaviour(enum.IntEnum):
    """Interaction types, ordered by strength of intent. Values match protos.EventType."""

    VIEW = 1
    CLICK = 2
    CART = 3
    PURCHASE = 4

    @property
    def relationship(self) -> str:
        """The edge type this behaviour writes, e.g. ``VIEWED``."""
        return _RELATIONSHIPS[self]


_RELATIONSHIPS = {
    Behaviour.VIEW: "VIEWED",
    Behaviour.CLICK: "CLICKED",
    Behaviour.CART: "CARTED",
    Behaviour.PURCHASE: "PURCHASED",
}

IN_CATEGORY = "IN_CATEGORY"
SUBCATEGORY_OF = "SUBCATEGORY_OF"
INTERACTION_RELATIONSHIPS: tuple[str, ...] = tuple(_RELATIONSHIPS[b] for b in Behaviour)
ALL_RELATIONSHIPS: tuple[str, ...] = (*INTERACTION_RELATIONSHIPS, IN_CATEGORY, SUBCATEGORY_OF)


@dataclass(frozen=True, slots=True)
class NodeRef:
    """A node named by its kind and external id."""

    kind: NodeKind
    key: str


@dataclass(frozen=True, slots=True)
class Interaction:
    """One behaviour event: an actor (user or session) did something to an item.

    ``ts`` is seconds since the Unix epoch (UTC).
    """

    event_id: str
    actor: NodeRef
    item_id: str
    behaviour: Behaviour
    ts: float


TopicPartition = tuple[str, int]
"""A log partition: (topic, partition number)."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record came from: topic, partition and offset in the event log."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """Catalogue entry. ``category_path`` runs from root to leaf."""

    item_id: str
    category_path: tuple[str, ...] = ()
    title: str = ""
    numeric_features: tuple[tuple[str, float], ...] = ()
    removed: bool = False
    ts: float = 0.0


@dataclass(frozen=True, slots=True)
class EdgeAggregate:
    """The commutative aggregate kept on every interaction edge."""

    count: int
    first_ts: float
    last_ts: float

    def merge(self, other: EdgeAggregate) -> EdgeAggregate:
        """Both aggregates as one: counts add, the earliest first and the latest last time."""
        return EdgeAggregate(
            self.count + other.count,
            min(self.first_ts, other.first_ts),
            max(self.last_ts, other.last_ts),
        )


EdgeKey = tuple[NodeRef, str, str]
"""An interaction edge: (actor, relationship, item id)."""


def edge_aggregates(interactions: Iterable[Interaction]) -> dict[EdgeKey, EdgeAggregate]:
    """Fold events into one aggregate per edge with ``EdgeAggregate.merge``.

    The one merger of edge aggregates in graphrec: the backends pre-aggregate a batch with it
    (their databases then merge the result into the stored edge by the same rule), and the
    datasets' exact ledger is this function.
    """
    out: dict[EdgeKey, EdgeAggregate] = {}
    for i in interactions:
        key = (i.actor, i.behaviour.relationship, i.item_id)
        one = EdgeAggregate(1, i.ts, i.ts)
        prev = out.get(key)
        out[key] = one if prev is None else prev.merge(one)
    return out


@dataclass(frozen=True, slots=True)
class DedupWindow:
    """Which event ids a store remembers to drop resent events (same ``event_id``).

    An id is remembered while both bounds hold: it was accepted less than ``max_age_s``
    seconds ago by ingest time (the clock of the writer, ``Batch.ingested_at``; event time
    is not used, so a backlog replayed late or events with skewed clocks are still caught),
    and it is among the ``max_ids`` ids accepted most recently (older ones are forgotten
    first). An event whose id is forgotten is counted again.
    """

    max_age_s: float = 24 * 3600.0
    max_ids: int = 1_000_000


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one ``GraphStore.apply`` call did: records written, records at or below the
    watermark (replayed), and events dropped because their id was seen in the window."""

    applied: int
    skipped_replayed: int
    skipped_duplicate: int = 0


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts of nodes per kind and edges per relationship type."""

    nodes: dict[str, int] = field(default_factory=dict)
    edges: dict[str, int] = field(default_factory=dict)
    interactions: int = 0
    watermarks: dict[str, int] = field(default_factory=dict)
