"""Producing domain records to a log (the embedded one or Kafka) as protobuf or JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from graphstore import Interaction, ItemRecord
from streaming.codec import encode_event, encode_item, event_to_json
from streaming.malformed import malformed_event
from streaming.records import EVENTS_TOPIC, ITEMS_TOPIC, OutRecord, RecordWriter


@dataclass(frozen=True)
class ProduceReport:
    items: int
    events: int
    malformed: int


def event_record(i: Interaction, fmt: str = "proto") -> OutRecord:
    """An event keyed by its actor id, so one actor's events stay in order in one partition."""
    value = encode_event(i) if fmt == "proto" else event_to_json(i)
    return OutRecord(value=value, key=i.actor.key.encode())


def produce(
    writer: RecordWriter,
    items: Sequence[ItemRecord],
    interactions: Iterable[Interaction],
    *,
    fmt: str = "proto",
    malformed: int = 0,
    seed: int = 0,
    chunk: int = 5_000,
    progress: Callable[[int], None] | None = None,
    events_topic: str = EVENTS_TOPIC,
    items_topic: str = ITEMS_TOPIC,
) -> ProduceReport:
    """Send items to ``items`` and interactions to ``events``, mixing in ``malformed`` bad ones.

    Bad records are spread at seeded random positions among the good ones.
    """
    if fmt not in ("proto", "json"):
        raise ValueError(f"unknown format {fmt!r}: use proto or json")
    for start in range(0, len(items), chunk):
        writer.send(
            items_topic,
            [OutRecord(encode_item(i), i.item_id.encode()) for i in items[start : start + chunk]],
        )
    events = [event_record(i, fmt) for i in interactions]
    rng = np.random.default_rng(seed)
    slots = np.sort(rng.integers(0, len(events) + 1, malformed)) if malformed else np.zeros(0, int)
    for k, slot in enumerate(slots[::-1]):
        bad = OutRecord(malformed_event(rng, k), key=f"bad-{k}".encode())
        events.insert(int(slot), bad)
    for start in range(0, len(events), chunk):
        writer.send(events_topic, events[start : start + chunk])
        if progress is not None:
            progress(min(chunk, len(events) - start))
    return ProduceReport(len(items), len(events) - malformed, malformed)
