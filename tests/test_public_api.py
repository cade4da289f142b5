"""The curated public surface of graphstore is pinned: changing it is a deliberate act."""

from __future__ import annotations

import graphstore

EXPECTED = {
    "ALL_RELATIONSHIPS",
    "IN_CATEGORY",
    "INTERACTION_RELATIONSHIPS",
    "SUBCATEGORY_OF",
    "ApplyResult",
    "Batch",
    "Behaviour",
    "CsrRelation",
    "CsrSnapshot",
    "EdgeAggregate",
    "GraphStore",
    "GraphStoreError",
    "Interaction",
    "InvalidInput",
    "ItemRecord",
    "Neighbourhood",
    "NodeKind",
    "NodeRef",
    "Position",
    "Positioned",
    "StoreStats",
    "open_store",
}


def test_graphstore_exports_exactly_the_public_names() -> None:
    assert set(graphstore.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(graphstore, name) is not None


def test_unknown_store_url_is_a_clear_error() -> None:
    import pytest

    with pytest.raises(graphstore.InvalidInput, match="memory://"):
        graphstore.open_store("foo:///x")
