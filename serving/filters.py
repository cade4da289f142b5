"""Which item rows a query may get: its exclusions, removed items, seen items, its category."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from serving.table import ItemTable
from serving.types import Query


def excluded_rows(table: ItemTable, query: Query, seen: Sequence[str]) -> set[int]:
    """Rows the query must not get: its exclusions, removed items, and ``seen``."""
    keys = sorted({*query.exclude, *seen})
    out = set(table.rows_of(keys).tolist()) - {-1}
    out.update(table.removed_rows().tolist())
    return out


def allowed_rows(table: ItemTable, query: Query) -> np.ndarray | None:
    """Rows of the query's category (and below), or None when it names no category."""
    if not query.category:
        return None
    allowed = table.in_category(query.category)
    return allowed[allowed < table.size]
