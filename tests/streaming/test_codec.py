"""Wire format: protobuf and JSON decode alike; every malformed kind gets a clear reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graphstore import Behaviour, Interaction, ItemRecord, NodeKind, NodeRef
from streaming.codec import (
    BadRecord,
    decode_event,
    decode_item,
    encode_event,
    encode_item,
    event_to_json,
)
from streaming.malformed import KINDS, malformed_event

NOW = 1_795_500_000.0  # 2026-11-24


def test_json_from_the_docs_is_accepted() -> None:
    raw = b'{"eventId":"e1","userId":"u1","itemId":"i9","type":"CLICK","ts":"2026-11-23T10:00:00Z"}'
    event = decode_event(raw, now=NOW)
    assert event == Interaction(
        "e1", NodeRef(NodeKind.USER, "u1"), "i9", Behaviour.CLICK, 1_795_428_000.0
    )


@pytest.mark.parametrize("actor", [NodeRef(NodeKind.USER, "u1"), NodeRef(NodeKind.SESSION, "s7")])
def test_protobuf_and_json_round_trip(actor: NodeRef) -> None:
    event = Interaction("e5", actor, "p3", Behaviour.PURCHASE, 1_790_000_000.25)
    assert decode_event(encode_event(event), now=NOW) == event
    assert decode_event(event_to_json(event), now=NOW) == event


def test_item_round_trip() -> None:
    item = ItemRecord(
        "p1", ("face", "serums"), "Serum", (("log_price", 3.2),), False, 1_790_000_000.0
    )
    assert decode_item(encode_item(item), now=NOW) == item


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"", "undecodable"),
        (b"{not json", "undecodable"),
        (
            b'{"eventId":"e1","itemId":"i1","type":"VIEW","ts":"2026-01-01T00:00:00Z"}',
            "missing-field",
        ),
        (
            b'{"eventId":"e1","userId":"u","itemId":"","type":"VIEW","ts":"2026-01-01T00:00:00Z"}',
            "missing-field",
        ),
        (  # blank ids pass protobuf but not GraphStore.apply: dead-lettered, never a crash
            b'{"eventId":"e","userId":" ","itemId":"i","type":"VIEW","ts":"2026-01-01T00:00:00Z"}',
            "missing-field",
        ),
        (b'{"eventId":"e1","userId":"u","itemId":"i","ts":"2026-01-01T00:00:00Z"}', "unknown-type"),
        (
            b'{"eventId":"e1","userId":"u","itemId":"i","type":"LIKE","ts":"2026-01-01T00:00:00Z"}',
            "wrong-type",
        ),
        (b'{"eventId":"e1","userId":"u","itemId":"i","type":"VIEW"}', "missing-field"),
        (
            b'{"eventId":"e1","userId":"u","itemId":"i","type":"VIEW","ts":"2099-01-01T00:00:00Z"}',
            "absurd-ts",
        ),
        (
            b'{"eventId":"e1","userId":"u","itemId":"i","type":"VIEW","ts":"1970-01-05T00:00:00Z"}',
            "absurd-ts",
        ),
        (
            json.dumps(
                {"eventId": "e", "userId": "u" * 300, "itemId": "i", "type": "VIEW"}
            ).encode(),
            "too-large",
        ),
        (b"{" + b" " * 70_000 + b"}", "oversize"),
    ],
)
def test_bad_events_raise_with_a_reason(payload: bytes, kind: str) -> None:
    with pytest.raises(BadRecord) as info:
        decode_event(payload, now=NOW)
    assert info.value.kind == kind
    assert str(info.value).startswith(kind + ": ")


def test_every_generated_malformed_kind_is_rejected() -> None:
    rng = np.random.default_rng(0)
    kinds = set()
    for n in range(len(KINDS) * 5):
        with pytest.raises(BadRecord) as info:
            decode_event(malformed_event(rng, n), now=NOW)
        kinds.add(info.value.kind)
    expected = {"undecodable", "missing-field", "unknown-type", "absurd-ts", "oversize"}
    assert expected | {"wrong-type"} <= kinds


EVENT = {"eventId": "e1", "userId": "u1", "itemId": "p1", "type": "VIEW"}
EVENT["ts"] = "2026-11-23T10:00:00Z"
ITEM = {"itemId": "p1", "categoryPath": ["a"], "title": "t", "numericFeatures": {"price": 1.5}}


def test_the_strict_baselines_are_accepted() -> None:
    assert decode_event(json.dumps(EVENT).encode(), now=NOW).behaviour is Behaviour.VIEW
    assert decode_event(json.dumps({**EVENT, "type": "PURCHASE"}).encode(), now=NOW)
    assert decode_item(json.dumps({**ITEM, "removed": True}).encode(), now=NOW).removed


# Values protobuf's JSON parser coerces (bool or number for an enum, a string or bool for a
# double, null for "unset"): the codec rejects each with the field's name.
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("type", True),
        ("type", 1),
        ("type", 1.0),
        ("type", "1"),
        ("type", None),
        ("itemId", None),
        ("eventId", None),
    ],
)
def test_json_event_coercions_are_rejected(field: str, value: object) -> None:
    with pytest.raises(BadRecord, match=f"^wrong-type: {field} ") as info:
        decode_event(json.dumps({**EVENT, field: value}).encode(), now=NOW)
    assert info.value.kind == "wrong-type"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("numericFeatures", {"price": "1.5"}),
        ("numericFeatures", {"price": True}),
        ("numericFeatures", {"price": None}),
        ("removed", None),
        ("title", None),
        ("categoryPath", None),
    ],
)
def test_json_item_coercions_are_rejected(field: str, value: object) -> None:
    with pytest.raises(BadRecord, match=f"^wrong-type: {field}") as info:
        decode_item(json.dumps({**ITEM, field: value}).encode(), now=NOW)
    assert info.value.kind == "wrong-type"


def test_a_field_given_by_both_its_names_is_rejected() -> None:
    with pytest.raises(BadRecord, match="named twice: eventId, event_id"):
        decode_event(json.dumps({**EVENT, "event_id": "e2"}).encode(), now=NOW)


def test_bad_item_category_is_rejected() -> None:
    with pytest.raises(BadRecord, match="contains '/'"):
        decode_item(b'{"itemId": "p1", "categoryPath": ["a/b"]}', now=NOW)
