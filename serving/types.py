"""The service's domain types, independent of protobuf: requests, results and errors."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from graphstore import Behaviour, NodeKind, NodeRef


class BadRequest(ValueError):
    """The caller sent something unusable; the message says what (→ INVALID_ARGUMENT)."""


class NotFound(LookupError):
    """The request names a thing the graph does not hold (→ NOT_FOUND)."""


class NotReady(RuntimeError):
    """No model version is loaded yet (→ UNAVAILABLE)."""


class SubjectKind(enum.StrEnum):
    USER = "user"
    SESSION = "session"
    ITEM = "item"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """An event of an anonymous session that came with the request (maybe not in the graph)."""

    item_id: str
    behaviour: Behaviour
    ts: float


@dataclass(frozen=True)
class Subject:
    """Who or what a request is about; ``events`` only for sessions."""

    kind: SubjectKind
    key: str
    events: tuple[SessionEvent, ...] = ()

    @property
    def node(self) -> NodeRef:
        kinds = {
            SubjectKind.USER: NodeKind.USER,
            SubjectKind.SESSION: NodeKind.SESSION,
            SubjectKind.ITEM: NodeKind.ITEM,
        }
        return NodeRef(kinds[self.kind], self.key)


@dataclass(frozen=True)
class Query:
    subject: Subject
    k: int
    category: str = ""  # only items in this category (a path key like "face/serums") or below
    exclude: frozenset[str] = frozenset()
    include_seen: bool = False


@dataclass(frozen=True, slots=True)
class ScoredItem:
    item_id: str
    score: float
    category_path: tuple[str, ...] = ()
    title: str = ""


@dataclass(frozen=True)
class Recommendation:
    """Top-k items, best first; ``fallback`` when they are popular items, with the reason."""

    items: list[ScoredItem]
    model_version: str
    fallback: bool = False
    fallback_reason: str = ""


@dataclass(frozen=True)
class ItemScores:
    """A subject's scores for named candidate items (ScoreItems), and the ids not known."""

    items: list[ScoredItem]
    model_version: str
    unknown_item_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExplanationPath:
    """``nodes[i] -[relationships[i]]-> nodes[i + 1]`` when ``forward[i]``, else the reverse.
    ``first_in_graph`` is False when the first hop is a request event the graph lacks."""

    nodes: tuple[NodeRef, ...]
    relationships: tuple[str, ...]
    forward: tuple[bool, ...]
    contribution: float
    first_in_graph: bool = True


@dataclass(frozen=True)
class Explanation:
    paths: list[ExplanationPath]
    cypher: str
    params: dict[str, str]
    browser_url: str
    model_version: str
