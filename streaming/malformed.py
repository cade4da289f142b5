"""Seeded malformed records of every kind the sink must dead-letter (for tests and drills)."""

from __future__ import annotations

import json

import numpy as np

from protos import graphrec_pb2 as pb
from streaming.codec import MAX_RECORD_BYTES

KINDS = (
    "garbage",
    "truncated-json",
    "missing-ids",
    "unknown-type",
    "absurd-ts",
    "oversize",
    "wrong-types",
)


def malformed_event(rng: np.random.Generator, n: int) -> bytes:
    """The ``n``-th malformed record; kinds rotate so every kind appears."""
    kind = KINDS[n % len(KINDS)]
    good = {"eventId": f"bad-{n}", "userId": "u1", "itemId": "p1", "type": "VIEW"}
    good["ts"] = "2026-11-23T10:00:00Z"
    if kind == "garbage":
        return b"\xff\x00" + rng.bytes(int(rng.integers(4, 64)))
    if kind == "truncated-json":
        return json.dumps(good).encode()[: int(rng.integers(5, 40))]
    if kind == "missing-ids":
        drop = ("eventId", "userId", "itemId")[n % 3]
        return json.dumps({k: v for k, v in good.items() if k != drop}).encode()
    if kind == "unknown-type":
        msg = pb.Event(event_id=f"bad-{n}", user_id="u1", item_id="p1", type=9)  # type: ignore[arg-type]
        msg.ts.FromSeconds(1_790_000_000)
        return msg.SerializeToString()
    if kind == "absurd-ts":
        return json.dumps({**good, "ts": "1970-01-02T00:00:00Z"}).encode()
    if kind == "oversize":
        return json.dumps({**good, "itemId": "x" * MAX_RECORD_BYTES}).encode()
    return json.dumps({**good, "type": 3.5, "itemId": 7}).encode()
