"""Wire format: protobuf by default, protobuf's JSON mapping accepted, strict validation.

JSON is stricter than protobuf's own parser, which coerces: an enum must be its name
(``"type": "VIEW"``, never ``1``, ``"1"`` or ``true``), a number a JSON number (never a
string or a bool), a string a JSON string, a bool ``true``/``false``; no field may be
``null``, repeated or named twice, and unknown fields are rejected.

``decode_event`` / ``decode_item`` either return a domain record or raise ``BadRecord``
whose message is the reason that goes into the dead-letter topic.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
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
            return _parse_json(data, kind)
        return kind.FromString(data)
    except (json_format.ParseError, DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRecord("undecodable", f"not a {kind.__name__}: {exc}") from None


def _parse_json(data: bytes, kind: type[M]) -> M:
    try:
        obj = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except BadRecord:
        raise
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError
        raise BadRecord("undecodable", f"not a {kind.__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise BadRecord("undecodable", f"not a {kind.__name__}: not a JSON object")
    _check_json_types(obj, kind.DESCRIPTOR)
    return json_format.ParseDict(obj, kind())


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = [key for key, _ in pairs]
        twice = sorted({key for key in seen if seen.count(key) > 1})
        raise BadRecord("undecodable", f"field named twice: {', '.join(twice)}")
    return out


def _check_json_types(obj: dict[str, Any], descriptor: Any) -> None:
    """Reject the JSON values protobuf's parser would coerce (see the module docstring)."""
    fields = {**{f.json_name: f for f in descriptor.fields}, **descriptor.fields_by_name}
    seen: dict[str, str] = {}
    for name, value in obj.items():
        field = fields.get(name)
        if field is None:
            continue  # json_format rejects unknown fields itself
        if field.name in seen:
            raise BadRecord("undecodable", f"field named twice: {seen[field.name]}, {name}")
        seen[field.name] = name
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry and isinstance(value, dict):
            value_field = entry.fields_by_name["value"]
            for key, v in value.items():
                _check_json_value(f"{name}.{key}", v, value_field)
        elif field.is_repeated and isinstance(value, list):
            for i, v in enumerate(value):
                _check_json_value(f"{name}[{i}]", v, field)
        else:
            _check_json_value(name, value, field)


_NUMBERS = {
    FieldDescriptor.TYPE_DOUBLE,
    FieldDescriptor.TYPE_FLOAT,
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
}


def _check_json_value(where: str, value: Any, field: FieldDescriptor) -> None:
    if value is None:
        raise BadRecord("wrong-type", f"{where} is null")
    kind = field.type
    enum = field.enum_type
    if enum is not None and not (isinstance(value, str) and value in enum.values_by_name):
        names = ", ".join(v.name for v in enum.values if v.number)
        raise BadRecord("wrong-type", f"{where} must be one of {names} as a string, got {value!r}")
    if kind in _NUMBERS and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise BadRecord("wrong-type", f"{where} must be a JSON number, got {value!r}")
    if kind == FieldDescriptor.TYPE_STRING and not isinstance(value, str):
        raise BadRecord("wrong-type", f"{where} must be a JSON string, got {value!r}")
    if kind == FieldDescriptor.TYPE_BOOL and not isinstance(value, bool):
        raise BadRecord("wrong-type", f"{where} must be true or false, got {value!r}")


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
