"""The change feed follows the sink's change stream alone: it hands on the items of the
changes the item table does not reflect, in batches bounded in staleness, without decoding an
event or asking the store for its watermarks once it runs. The change records are written
here as the sink writes them (``streaming.changes.encode_change``), on an embedded log."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import streaming.codec
from graphrec.changefeed import ChangeFeed
from graphstore import ItemRecord, NodeKind, NodeRef, TopicPartition, open_store
from streaming.changes import CHANGES_TOPIC, Change, encode_change
from streaming.urls import open_writer
from tests.integration.waiting import wait_until

VERSION = {("events", 0): 10, ("items", 0): 3}  # what the loaded version's table reflects


@dataclass
class Handed:
    """What the feed handed on, batch by batch, and when."""

    batches: list[tuple[list[str], list[ItemRecord], float]] = field(default_factory=list)

    def __call__(self, ids: list[str], records: list[ItemRecord]) -> None:
        self.batches.append((ids, records, time.time()))

    @property
    def ids(self) -> list[str]:
        return [i for ids, _, _ in self.batches for i in ids]

    def when(self, item: str) -> float:
        return next(at for ids, _, at in self.batches if item in ids)


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    return f"log://{tmp_path / 'log'}"


@pytest.fixture
def decoded_events(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every call of ``decode_event``, however a module imported it."""
    calls: list[bytes] = []
    original = streaming.codec.decode_event

    def counting(raw: bytes):  # type: ignore[no-untyped-def]
        calls.append(raw)
        return original(raw)

    for module in list(sys.modules.values()):
        if getattr(module, "decode_event", None) is original:
            monkeypatch.setattr(module, "decode_event", counting)
    return calls


def item(
    key: str, at: dict[TopicPartition, int], events: int = 1, record: ItemRecord | None = None
) -> Change:
    """An item's change in a commit at positions ``at``, committed now."""
    return Change(NodeRef(NodeKind.ITEM, key), dict(at), events, record, time.time())


def write(log_url: str, *changes: Change) -> None:
    open_writer(log_url).send(CHANGES_TOPIC, [encode_change(c) for c in changes])


def running(feed: ChangeFeed) -> ChangeFeed:
    feed.start()
    return feed


def stopped(feed: ChangeFeed) -> None:
    feed.stop()
    feed.join(timeout=30)
    assert not feed.is_alive()


def test_only_changes_past_the_version_are_handed_on_without_events_or_watermarks(
    log_url: str, decoded_events: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    record = ItemRecord("new", ("face", "serums"), "a new serum")
    write(
        log_url,
        item("old", {("events", 0): 10}, events=2),  # the version holds it
        item("late", {("events", 0): 11}, events=1),
        Change(NodeRef(NodeKind.USER, "u1"), {("events", 0): 11}, 1, None, time.time()),
        item("new", {("items", 0): 4}, record=record),
        item("both", {("events", 0): 9, ("items", 0): 4}, events=1),  # items:0 not covered
    )
    handed = Handed()
    with open_store("memory://") as store:
        asked: list[int] = []
        monkeypatch.setattr(store, "watermarks", lambda: asked.append(1) or {})
        feed = running(ChangeFeed(log_url, store, handed, start_from=lambda: VERSION))
        try:
            wait_until("the first changes", lambda: {"late", "new", "both"} <= set(handed.ids), 30)
            # steady state: more commits, one at a time
            for n in range(5):
                write(log_url, item(f"more-{n}", {("events", 1): n}, events=1))
            wait_until("the later changes", lambda: "more-4" in handed.ids, 30)
        finally:
            stopped(feed)
    assert sorted(set(handed.ids)) == sorted(
        {"late", "new", "both", *(f"more-{n}" for n in range(5))}
    )
    assert [r for _, records, _ in handed.batches for r in records] == [record]
    assert asked == [] and decoded_events == []


def test_without_a_version_it_skips_what_the_store_held_when_it_started(
    log_url: str, decoded_events: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(log_url, item("held", {("events", 0): 10}), item("after", {("events", 0): 11}))
    handed = Handed()
    with open_store("memory://") as store:
        asked: list[int] = []
        monkeypatch.setattr(store, "watermarks", lambda: asked.append(1) or dict(VERSION))
        feed = running(ChangeFeed(log_url, store, handed))
        try:
            wait_until("the change after the store's", lambda: "after" in handed.ids, 30)
            for n in range(5):
                write(log_url, item(f"more-{n}", {("events", 0): 12 + n}))
            wait_until("the later changes", lambda: "more-4" in handed.ids, 30)
        finally:
            stopped(feed)
    assert "held" not in handed.ids
    assert asked == [1], "the store's watermarks are read once, when the feed starts"
    assert decoded_events == []


def test_a_change_waits_for_its_batch_at_most_the_staleness_bound(log_url: str) -> None:
    handed = Handed()
    with open_store("memory://") as store:
        feed = running(
            ChangeFeed(log_url, store, handed, start_from=lambda: VERSION, max_staleness_s=1.0)
        )
        try:
            committed = time.time()
            write(log_url, *(item(f"a-{n}", {("events", 0): 20 + n}) for n in range(3)))
            time.sleep(0.2)  # a second commit while the first waits: one batch for both
            write(log_url, item("b", {("events", 0): 30}))
            wait_until("the batch", lambda: "b" in handed.ids, 30)
        finally:
            stopped(feed)
    assert len(handed.batches) == 1 and set(handed.ids) == {"a-0", "a-1", "a-2", "b"}
    waited = handed.when("a-0") - committed
    assert 0.9 <= waited < 5.0, f"handed on {waited:.2f} s after its commit"


def test_a_full_batch_or_an_overdue_change_goes_at_once(log_url: str) -> None:
    handed = Handed()
    with open_store("memory://") as store:
        feed = running(
            ChangeFeed(
                log_url,
                store,
                handed,
                start_from=lambda: VERSION,
                max_staleness_s=60.0,
                batch_items=20,
            )
        )
        try:
            write(log_url, *(item(f"f-{n}", {("events", 0): 20 + n}) for n in range(25)))
            # neither waits for the 60 s bound
            wait_until("the full batch", lambda: "f-24" in handed.ids, 20)
            overdue = Change(NodeRef(NodeKind.ITEM, "o"), {("events", 0): 60}, 1, None, 0.0)
            write(log_url, overdue)  # committed long ago: read late, handed on at once
            wait_until("the overdue change", lambda: "o" in handed.ids, 20)
        finally:
            stopped(feed)


def test_a_failed_batch_stays_pending_and_is_tried_again(log_url: str) -> None:
    handed = Handed()
    failing = threading.Event()
    failing.set()

    def notify(ids: list[str], records: list[ItemRecord]) -> None:
        if failing.is_set():
            failing.clear()
            raise ConnectionError("store unreachable")
        handed(ids, records)

    with open_store("memory://") as store:
        feed = ChangeFeed(log_url, store, notify, start_from=lambda: VERSION, max_staleness_s=0.05)
        feed.start()
        try:
            write(log_url, item("x", {("events", 0): 40}))
            wait_until("the retried batch", lambda: "x" in handed.ids, 30)
        finally:
            stopped(feed)
    assert feed.state.failures_in_a_row == 0 and handed.ids == ["x"]


def test_a_hot_reload_re_reads_the_stream_for_the_new_version(log_url: str) -> None:
    handed = Handed()
    loaded: list[dict[TopicPartition, int]] = [dict(VERSION)]
    write(log_url, item("since-older", {("events", 0): 8}), item("since-both", {("events", 0): 12}))
    with open_store("memory://") as store:
        feed = running(
            ChangeFeed(log_url, store, handed, start_from=lambda: loaded[-1], max_staleness_s=0.05)
        )
        try:
            wait_until("the change past the first version", lambda: "since-both" in handed.ids, 30)
            assert "since-older" not in handed.ids
            loaded.append({("events", 0): 5})  # a version trained on an older snapshot
            wait_until("what the new version lacks", lambda: "since-older" in handed.ids, 30)
        finally:
            stopped(feed)
    assert handed.ids.count("since-both") == 2
