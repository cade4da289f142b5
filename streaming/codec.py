"""Wire format: protobuf by default, protobuf's JSON mapping accepted, strict validation.

``decode_event`` / ``decode_item`` either return a domain record or raise ``BadRecord``
whose message is the reason that goes into the dead-letter topic.
"""

from __future__ import annotations

import json
import math
import time
from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from graphstore import (
    MAX_CLOCK_SKEW_S,
    Behaviour,
    Interaction,
    InvalidId,
    ItemRecord,
    NodeKind,
    NodeRef,
    check_id,
)
from protos import graphrec_pb2 as pb

M = TypeVar("M", bound=Message)

MAX_RECORD_BYTES = 64 * 1024
EARLIEST_TS = 631_152_000.0  # 1990-01-01: anything earlier is a unit or clock bug
MAX_CATEGORY_DEPTH = 8
MAX_FEATURES = 64
_BEHAVIOURS = {b.value: b for b in Behaviour}


class BadRecord(ValueError):
    """A record that cannot be applied; ``str()`` is the dead-letter reason, ``kind`` its class."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def decode_event(data: bytes, now: float | None = None) -> Interaction:
    """Bytes (protobuf or JSON) → a validated Interaction."""
    msg = _parse(data, pb.Event)
    event_id = msg.event_id
    if not event_id:
        raise BadRecord("missing-field", "event_id is empty")
    actor = msg.WhichOneof("actor")
    if actor is None:
        raise BadRecord("missing-field", "set user_id or session_id")
    if actor == "user_id":
        kind, key = NodeKind.USER, msg.user_id
    else:
        kind, key = NodeKind.SESSION, msg.session_id
    item_id = msg.item_id
    _check_id(actor, key)
    _check_id("item_id", item_id)
    _check_id("event_id", event_id)
    behaviour = _BEHAVIOURS.get(msg.type)
    if behaviour is None:
        raise BadRecord(
            "unknown-type", f"event type {msg.type}; expected VIEW, CLICK, CART or PURCHASE"
        )
    ts = _timestamp(msg, now)
    return Interaction(event_id, NodeRef(kind, key), item_id, behaviour, ts)


def decode_item(data: bytes, now: float | None = None) -> ItemRecord:
    """Bytes (protobuf or JSON) → a validated ItemRecord."""
    msg = _parse(data, pb.ItemUpsert)
    _check_id("item_id", msg.item_id)
    path = tuple(msg.category_path)
    if len(path) > MAX_CATEGORY_DEPTH:
        raise BadRecord("too-large", f"category_path deeper than {MAX_CATEGORY_DEPTH}")
    for name in path:
        _check_id("category", name)
        if "/" in name:
            raise BadRecord("bad-category", f"category name {name!r} contains '/'")
    if len(msg.numeric_features) > MAX_FEATURES:
        raise BadRecord("too-large", f"more than {MAX_FEATURES} numeric features")
    features = tuple(sorted(msg.numeric_features.items()))
    if any(not math.isfinite(v) for _, v in features):
        raise BadRecord("bad-feature", "numeric feature is not a finite number")
    ts = _timestamp(msg, now) if msg.HasField("ts") else 0.0
    return ItemRecord(msg.item_id, path, msg.title, features, msg.removed, ts)


def encode_event(i: Interaction) -> bytes:
    """Interaction → protobuf bytes (the default wire format)."""
    msg = pb.Event(event_id=i.event_id, item_id=i.item_id, type=i.behaviour.value)  # type: ignore[arg-type]
    if i.actor.kind is NodeKind.USER:
        msg.user_id = i.actor.key
    else:
        msg.session_id = i.actor.key
    _set_ts(msg, i.ts)
    return msg.SerializeToString()


def encode_item(item: ItemRecord) -> bytes:
    """ItemRecord → protobuf bytes."""
    msg = pb.ItemUpsert(
        item_id=item.item_id,
        category_path=item.category_path,
        title=item.title,
        numeric_features=dict(item.numeric_features),
        removed=item.removed,
    )
    if item.ts:
        _set_ts(msg, item.ts)
    return msg.SerializeToString()


def event_to_json(i: Interaction) -> bytes:
    """Interaction → protobuf JSON mapping, e.g. ``{"eventId": "e1", "userId": ...}``."""
    msg = pb.Event()
    msg.ParseFromString(encode_event(i))
    return json.dumps(json_format.MessageToDict(msg)).encode()


def _parse(data: bytes, kind: type[M]) -> M:
    if len(data) > MAX_RECORD_BYTES:
        raise BadRecord("oversize", f"{len(data)} bytes > {MAX_RECORD_BYTES}")
    if not data:
        raise BadRecord("undecodable", "empty record")
    try:
        if data.lstrip()[:1] == b"{":
            return json_format.Parse(data.decode("utf-8"), kind())
        return kind.FromString(data)
    except (json_format.ParseError, DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRecord("undecodable", f"not a {kind.__name__}: {exc}") from None


def _check_id(what: str, value: str) -> None:
    # The store's own rule: a record that passed here but failed there would stop the sink
    # (InvalidInput is not retried) instead of being dead-lettered.
    try:
        check_id(what, value)
    except InvalidId as exc:
        raise BadRecord(
            "missing-field" if exc.reason == "empty" else "too-large", str(exc)
        ) from None


def _timestamp(msg: pb.Event | pb.ItemUpsert, now: float | None) -> float:
    if not msg.HasField("ts"):
        raise BadRecord("missing-field", "ts is not set")
    stamp = msg.ts
    ts = stamp.seconds + stamp.nanos / 1e9
    latest = (time.time() if now is None else now) + MAX_CLOCK_SKEW_S
    if not EARLIEST_TS <= ts <= latest:
        raise BadRecord("absurd-ts", f"{ts:.0f} is outside 1990-01-01 .. now + 1 day")
    return ts


def _set_ts(msg: pb.Event | pb.ItemUpsert, ts: float) -> None:
    # Split before scaling: ts * 1e9 would round to 256 ns at today's epoch values.
    seconds = math.floor(ts)
    nanos = round((ts - seconds) * 1e9)
    msg.ts.seconds, msg.ts.nanos = (seconds + 1, 0) if nanos == 1_000_000_000 else (seconds, nanos)
