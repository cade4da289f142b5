"""`graphrec import`: every format, every kind of bad row, event-time order, pacing, and the
round trip import → ingest → graph == the file's ledger."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from gnn.datasets.files import BadRow, Columns, read_file
from gnn.datasets.formats import BadFile
from graphrec.cli import app
from graphrec.importer import send_paced
from graphrec.pipeline import ingest
from graphstore import Behaviour, Interaction, NodeKind, NodeRef, open_store
from streaming.codec import decode_event, decode_item
from streaming.log import EventLog, LogConsumer
from streaming.records import OutRecord
from tests.streaming.test_sink import interaction_edges, ledger_table

runner = CliRunner()
T0 = 1_000_000_000.0
# (user, item, ts, type) in file order; deliberately not in time order
ROWS = [
    ("u1", "i1", T0 + 50, "view"),
    ("u2", "i2", T0 + 10, "purchase"),
    ("u1", "i2", T0 + 30, "CART"),
    ("u3", "i1", T0 + 20, "click"),
    ("u1", "i1", T0 + 60, "view"),
]


def expected(name: str) -> list[Interaction]:
    """What ROWS mean, written out by hand: event ids are ``<file>:<line>`` (header is 1)."""
    return [
        Interaction(f"{name}:{n + 2}", NodeRef(NodeKind.USER, u), i, Behaviour[t.upper()], ts)
        for n, (u, i, ts, t) in enumerate(ROWS)
    ]


def write(path: Path) -> Path:
    dicts = [{"user_id": u, "item_id": i, "timestamp": ts, "type": t} for u, i, ts, t in ROWS]
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(dicts), path)
    elif path.suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(d) for d in dicts) + "\n")
    elif path.suffix == ".inter":
        lines = ["user_id:token\titem_id:token\ttimestamp:float\ttype:token"]
        path.write_text("\n".join(lines + [f"{u}\t{i}\t{ts}\t{t}" for u, i, ts, t in ROWS]) + "\n")
    else:
        lines = ["user_id,item_id,timestamp,type"] + [f"{u},{i},{ts},{t}" for u, i, ts, t in ROWS]
        path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("name", ["a.csv", "a.jsonl", "a.parquet", "a.inter"])
def test_each_format_reads_every_row(tmp_path: Path, name: str) -> None:
    data = read_file(write(tmp_path / name), strict=True)
    want = expected(name)
    if name.endswith((".parquet", ".jsonl")):  # no header line: rows count from 1
        want = [replace(w, event_id=f"{name}:{n + 1}") for n, w in enumerate(want)]
    assert data.interactions == want
    assert (data.rows, data.rejects) == (5, [])


def test_recbole_item_and_user_files(tmp_path: Path) -> None:
    item = tmp_path / "x.item"
    item.write_text(
        "item_id:token\tmovie_title:token_seq\tcategory:token\tyear:float\n"
        "i1\tToy Story\tmovies/Animation\t1995\ni2\tHeat\tmovies>Crime\t\n"
    )
    user = tmp_path / "x.user"
    user.write_text("user_id:token\tage:float\nu1\t20\n")
    items = read_file(item, Columns(features=("year",)), strict=True).items
    assert [(i.item_id, i.category_path, i.title, i.numeric_features) for i in items] == [
        ("i1", ("movies", "Animation"), "Toy Story", (("year", 1995.0),)),
        ("i2", ("movies", "Crime"), "Heat", ()),
    ]
    users = read_file(user, strict=True)
    assert (users.rows, users.interactions, users.items) == (1, [], [])


BAD_ROWS = {
    "missing column": ("u9,i9", "missing column 'timestamp'"),
    "bad timestamp": ("u9,i9,yesterday,view", "bad timestamp 'yesterday'"),
    "empty id": ("u9,,1000000001,view", "empty 'item_id'"),
    "wrong type": ("u9,i9,1000000001,teleport", "unknown behaviour 'teleport'"),
    "repeated header": ("user_id,item_id,timestamp,type", "repeated header row"),
    "too many fields": ("u9,i9,1000000001,view,extra", "5 fields, the header has 4"),
}


@pytest.mark.parametrize("kind", [*BAD_ROWS, "non-UTF-8"])
def test_a_bad_row_is_rejected_with_its_line_and_nothing_else_is(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path / "a.csv")
    raw, reason = BAD_ROWS.get(kind, ("", "not UTF-8: byte 0xff at column 3"))
    text = path.read_bytes().splitlines(keepends=True)
    bad = raw.encode() + b"\n" if raw else b"u9\xff,i9,1000000001,view\n"
    path.write_bytes(b"".join([*text[:3], bad, *text[3:]]))  # the bad row is line 4
    data = read_file(path)
    assert [(r.line, r.reason.startswith(reason)) for r in data.rejects] == [(4, True)], (
        data.rejects
    )
    good = expected("a.csv")
    assert [i.event_id for i in data.interactions] == [
        f"a.csv:{n}" for n in (2, 3, 5, 6, 7)
    ]  # lines after the bad one keep their own numbers
    assert [(i.actor, i.item_id, i.ts) for i in data.interactions] == [
        (g.actor, g.item_id, g.ts) for g in good
    ]
    with pytest.raises(BadRow, match=r"a\.csv:4: "):
        read_file(path, strict=True)


def test_a_duplicate_column_in_the_header_fails_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("user_id,item_id,item_id\nu1,i1,i2\n")
    with pytest.raises(BadFile, match="duplicate column 'item_id'"):
        read_file(path)


def test_without_time_rows_keep_file_order_one_second_apart(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("user,movie_id\nu1,i1\nu2,i2\nu1,i3\n")
    data = read_file(path, synthetic_ts=5.0)
    assert [(i.actor.key, i.item_id, i.ts) for i in data.interactions] == [
        ("u1", "i1", 5.0),
        ("u2", "i2", 6.0),
        ("u1", "i3", 7.0),
    ]


def test_cli_import_writes_events_in_time_order_and_rejects_beside_the_file(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "a.csv")
    with path.open("a") as f:
        f.write("u9,,1000000001,view\n")
    log = tmp_path / "log"
    result = runner.invoke(app, ["import", str(path), "--to", f"log://{log}"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["events"], report["rejected"]) == (5, 1)
    rejects = (tmp_path / "a.csv.rejects.csv").read_text().splitlines()
    assert rejects[1].startswith(f"{path},7,empty 'item_id'")
    records = LogConsumer(EventLog(log), "check", ["events"]).poll(100, 0.2)
    # a log orders records within a partition (the events are keyed by actor)
    by_partition: dict[int, list[float]] = {}
    for r in records:
        by_partition.setdefault(r.partition, []).append(decode_event(r.value).ts)
    assert all(times == sorted(times) for times in by_partition.values())
    assert sorted(t for ts in by_partition.values() for t in ts) == sorted(r[2] for r in ROWS)


def test_cli_strict_fails_on_the_first_bad_row_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv")
    with path.open("a") as f:
        f.write("u9,i9,soon,view\n")
    result = runner.invoke(app, ["import", str(path), "--strict", "--to", f"log://{tmp_path}/l"])
    assert result.exit_code == 2
    assert f"{path}:7: bad timestamp 'soon'" in result.output
    assert not (tmp_path / "a.csv.rejects.csv").exists()


def test_round_trip_import_ingest_graph_is_the_files_ledger(tmp_path: Path) -> None:
    events, items = write(tmp_path / "a.jsonl"), tmp_path / "c.item"
    items.write_text("item_id:token\tcategory:token\ni1\tshop/a\ni2\tshop/b\n")
    log_url = f"log://{tmp_path / 'log'}"
    result = runner.invoke(app, ["import", str(items), str(events), "--to", log_url])
    assert result.exit_code == 0, result.output
    records = LogConsumer(EventLog(tmp_path / "log"), "c", ["items"]).poll(100, 0.2)
    assert {decode_item(r.value).category_path for r in records} == {("shop", "a"), ("shop", "b")}
    with open_store(f"sqlite://{tmp_path / 'graph'}") as store:
        summary = ingest(log_url, store, group="sink", idle_exit_s=0.3)
        assert (summary.applied, summary.dead_lettered) == (2 + len(ROWS), 0)
        assert interaction_edges(store) == ledger_table(expected("a.jsonl"))
        # importing the same file again adds nothing: same event ids, dropped by dedup
        runner.invoke(app, ["import", str(events), "--to", log_url])
        again = ingest(log_url, store, group="sink", idle_exit_s=0.3)
        assert (again.applied, again.skipped_duplicate) == (0, len(ROWS))
        assert interaction_edges(store) == ledger_table(expected("a.jsonl"))


class _Recorder:
    def __init__(self) -> None:
        self.now = 100.0
        self.sent: list[tuple[float, int]] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def send(self, topic: str, records: list[OutRecord]) -> None:
        self.sent.append((self.now, len(records)))


def test_speed_paces_events_at_n_times_real_time() -> None:
    actor = NodeRef(NodeKind.USER, "u")
    events = [
        Interaction(f"e{k}", actor, "i", Behaviour.VIEW, T0 + ts)
        for k, ts in enumerate([0, 0, 10, 40])
    ]
    rec = _Recorder()
    send_paced(rec, events, 10.0, events_topic="events", clock=rec.clock, sleep=rec.sleep)
    # 10× real time: ts 0 (two events) at once, ts 10 one second later, ts 40 four seconds in
    assert rec.sent == [(100.0, 2), (101.0, 1), (104.0, 1)]
