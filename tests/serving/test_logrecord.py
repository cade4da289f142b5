"""The recommendation log's record: its JSON round trip, and what a reader refuses."""

from __future__ import annotations

import json

import pytest

from serving.logrecord import BadLogRecord, LoggedRecommendation, decode, encode
from serving.types import SubjectKind

RECORD = LoggedRecommendation(
    request_id="r-1",
    ts=1_700_000_000.25,
    subject_kind=SubjectKind.SESSION,
    subject_id="s-9",
    items=("i1", "i2"),
    scores=(0.5, 0.25),
    model_version="v3",
    fallback=True,
    fallback_reason="new session",
    latency_ms=1.5,
    arm="b",
)


def test_a_record_reads_back_as_written() -> None:
    assert decode(encode(RECORD)) == RECORD
    assert RECORD.key == b"session:s-9"


def test_fields_a_reader_does_not_know_are_ignored_and_defaults_filled() -> None:
    obj = json.loads(encode(RECORD))
    obj["shadow"] = {"model_version": "v4", "items": ["i3"]}
    for name in ("fallback", "fallback_reason", "latency_ms", "arm", "scores"):
        del obj[name]
    got = decode(json.dumps(obj).encode())
    assert (got.arm, got.fallback, got.scores, got.items) == ("primary", False, (), RECORD.items)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda o: o.pop("items"), "KeyError"),
        (lambda o: o.update(ts="soon"), "ValueError"),
        (lambda o: o.update(ts=float("nan")), "ts nan"),
        (lambda o: o["subject"].update(kind="robot"), "ValueError"),
        (lambda o: o.update(scores=[1.0]), "2 items but 1 scores"),
    ],
)
def test_what_is_not_a_record_is_refused_saying_why(change: object, says: str) -> None:
    obj = json.loads(encode(RECORD))
    change(obj)  # type: ignore[operator]
    with pytest.raises(BadLogRecord, match=says):
        decode(json.dumps(obj).encode())


def test_bytes_that_are_not_json_are_refused() -> None:
    for value in (b"not json", b"\xff\xfe", b"[1, 2]"):
        with pytest.raises(BadLogRecord, match="not a recommendation log record"):
            decode(value)
