"""Answers for subjects with nothing to go on: trending items, else the store's counts."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from serving.table import ItemTable
from serving.types import ScoredItem, Subject, SubjectKind

log = logging.getLogger(__name__)
# k and a category key ("" for all) → (item id, score) best first
Popular = Callable[[int, str], list[tuple[str, float]]]


def why_fallback(subject: Subject) -> str:
    if subject.kind is SubjectKind.USER:
        return f"user {subject.key!r} has no interactions in the graph"
    return f"session {subject.key!r} has no events yet"


def popular_items(
    table: ItemTable,
    popular: Popular | None,
    category: str,
    k: int,
    exclude: set[int],
) -> tuple[list[ScoredItem], str]:
    """The ``k`` most popular items of ``category`` ("" for all) outside the ``exclude``
    rows, and where their ranking came from."""
    ranked: list[tuple[str, float]] = []
    if popular is not None:
        try:
            ranked = popular(k + len(exclude), category)
        except Exception as exc:  # the trending service is an optimisation, not a need
            log.warning("trending counts unavailable (%s); using store counts", exc)
    source = "trending items"
    if not ranked:
        source = "popular items (store counts)"
        ranked = _store_counts(table, category, k + len(exclude))
    items = []
    for item_id, score in ranked:
        row = table.index.get(item_id, -1)
        if row in exclude or row < 0:
            continue
        items.append(ScoredItem(item_id, score, table.category_path(row), table.titles[row]))
        if len(items) == k:
            break
    return items, source


def _store_counts(table: ItemTable, category: str, n: int) -> list[tuple[str, float]]:
    """The ``n`` items of ``category`` with the most interactions when the table was built."""
    rows = table.in_category(category) if category else np.arange(table.size)
    rows = rows[rows < len(table.popularity)]
    top = rows[np.argsort(-table.popularity[rows], kind="stable")][:n]
    return [(table.keys[r], float(table.popularity[r])) for r in top.tolist()]
