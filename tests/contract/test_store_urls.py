"""Store URLs name what they open: sqlite://PATH is durable, memory:// is gone when closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphstore import Behaviour, Interaction, InvalidInput, NodeKind, NodeRef, open_store

EVENT = Interaction("e1", NodeRef(NodeKind.USER, "u1"), "p1", Behaviour.VIEW, 1_790_000_000.0)


def test_sqlite_url_is_durable(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'graph'}"
    with open_store(url) as store:
        store.add_interactions([EVENT])
        assert store.url == url
    with open_store(url) as store:
        assert store.stats().interactions == 1
    assert (tmp_path / "graph" / "graph.sqlite").is_file()


def test_memory_url_is_gone_when_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("memory://") as store:
        store.add_interactions([EVENT])
        assert store.stats().interactions == 1
    with open_store("memory://") as store:
        assert store.stats().interactions == 0
    assert not any(tmp_path.iterdir())  # nothing written to disk


def test_memory_url_with_a_path_says_to_use_sqlite() -> None:
    with pytest.raises(InvalidInput, match=r"use sqlite://data/graph"):
        open_store("memory://data/graph")


def test_sqlite_url_without_a_path_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="needs a directory"):
        open_store("sqlite://")
