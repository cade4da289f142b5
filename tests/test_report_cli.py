"""``graphrec report`` over the embedded log and over files, with known answers: the
recommendation log written through the service's own wiring, events as producers send them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.reclog import log_config
from graphstore import Behaviour, Interaction, NodeKind, NodeRef
from serving.logrecord import LoggedRecommendation, encode
from serving.types import SubjectKind
from streaming.log import EventLog
from streaming.produce import event_record
from streaming.records import OutRecord

runner = CliRunner()
T0 = 1_700_000_000.0
RECS = [
    # user u1 is shown a, b by v1, then a again by v2 ten minutes later
    LoggedRecommendation("r1", T0, SubjectKind.USER, "u1", ("a", "b"), (0.9, 0.8), "v1"),
    LoggedRecommendation("r2", T0 + 600, SubjectKind.USER, "u1", ("a", "c"), (0.9, 0.7), "v2"),
    LoggedRecommendation("r3", T0, SubjectKind.SESSION, "s1", ("d",), (0.5,), "v1", arm="b"),
]
EVENTS = [  # (event id, actor, item, behaviour, seconds after T0)
    ("e1", "u1", "b", Behaviour.CLICK, 60),  # r1 (only it showed b)
    ("e2", "u1", "a", Behaviour.PURCHASE, 700),  # r2: the most recent showing a
    ("e3", "u1", "b", Behaviour.CLICK, 1900),  # r1's 30 min are over at T0 + 1800
    ("e4", "u1", "z", Behaviour.CLICK, 100),  # never recommended
    ("e5", "s1", "d", Behaviour.VIEW, 5),  # a view, where the data has clicks
]


def interactions() -> list[Interaction]:
    kinds = {"u": NodeKind.USER, "s": NodeKind.SESSION}
    return [
        Interaction(eid, NodeRef(kinds[actor[0]], actor), item, b, T0 + after)
        for eid, actor, item, b, after in EVENTS
    ]


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    url = f"log://{tmp_path / 'log'}"
    publish = log_config(url).connect()
    publish([(r.key, encode(r)) for r in RECS])
    publish([(b"junk", b"not a record")])
    events = EventLog(tmp_path / "log")
    events.send("events", [event_record(i) for i in interactions()])
    events.send("events", [OutRecord(b"\xff\xffnot an event", b"bad")])
    return url


def report(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["report", *args, "--json"])
    assert result.exit_code == 0, result.output
    figures: dict[str, object] = json.loads(result.output.strip().splitlines()[-1])
    return figures


def check_known_answers(figures: dict[str, object]) -> None:
    arms = {(a["model_version"], a["arm"]): a for a in figures["arms"]}  # type: ignore[attr-defined]
    v1, v2, b = arms["v1", "primary"], arms["v2", "primary"], arms["v1", "b"]
    assert (v1["impressions"], v1["clicks"], v1["clicked"], v1["conversions"]) == (1, 1, 1, 0)
    assert (v2["impressions"], v2["clicks"], v2["conversions"], v2["converted"]) == (1, 1, 1, 1)
    assert (b["impressions"], b["clicks"]) == (1, 0)
    assert (figures["attributed"], figures["unattributed"], figures["events"]) == (2, 2, 5)
    assert v2["conversion_rate"]["low"] < 1.0 == v2["conversion_rate"]["hits"]  # type: ignore[index]


def test_report_over_the_log(log_url: str) -> None:
    figures = report("--from", log_url)
    check_known_answers(figures)
    assert figures["window_s"] == 1800.0
    assert figures["unreadable"] == {"recommendations": 1, "events": 1}


def test_report_over_files(tmp_path: Path) -> None:
    recs = tmp_path / "recs.jsonl"
    recs.write_bytes(b"\n".join(encode(r) for r in RECS) + b"\n")
    events = tmp_path / "events.csv"
    rows = [f"{a},{i},{T0 + t},{b.name.lower()}" for _, a, i, b, t in EVENTS]
    events.write_text("\n".join(["user_id,item_id,timestamp,type", *rows]) + "\n")
    figures = report("--recommendations", str(recs), "--events", str(events))
    check_known_answers(figures)  # the file's sessions column is absent: s1 is a user here
    assert figures["unreadable"] == {"recommendations": 0, "events": 0}


def test_a_longer_window_and_chosen_clicks_change_the_answer(log_url: str) -> None:
    longer = report("--from", log_url, "--window", "2h")
    assert (longer["attributed"], longer["unattributed"]) == (3, 1)  # e3 now within r1's
    views = report("--from", log_url, "--clicks", "view,click")
    session = next(a for a in views["arms"] if a["arm"] == "b")  # type: ignore[attr-defined]
    assert session["clicks"] == 1 and views["click_behaviours"] == ["view", "click"]


def test_the_table_shows_each_arm_with_its_intervals(log_url: str) -> None:
    result = runner.invoke(app, ["report", "--from", log_url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "v2" in result.output and "100.00% [" in result.output
    assert "attributed 2, not attributed 2" in result.output


def test_plot_draws_a_png(log_url: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "report.png"
    result = runner.invoke(app, ["report", "--from", log_url, "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = runner.invoke(app, ["report", "--plot", "out.png"])
    assert result.exit_code == 2
    assert "--plot needs matplotlib" in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--window", "0"], "positive duration"),
        (["--window", "soon"], "positive duration"),
        (["--clicks", "likes"], "view, click, cart, purchase"),
        (["--from", "log:///nowhere/at/all"], "no event log at"),
    ],
)
def test_bad_options_are_one_clear_line(args: list[str], says: str) -> None:
    result = runner.invoke(app, ["report", *args])
    assert result.exit_code == 2
    assert says in result.output


@pytest.fixture
def shadow_log(tmp_path: Path) -> str:
    """A log holding served and shadow lists of the same requests (``test_shadow_compare``)."""
    from tests.serving import test_shadow_compare as known

    url = f"log://{tmp_path / 'shadow-log'}"
    log_config(url).connect()([(r.key, encode(r)) for r in known.RECORDS])
    EventLog(tmp_path / "shadow-log").send("events", [event_record(i) for i in known.events()])
    return url


def test_report_sets_the_shadow_beside_the_served_version(shadow_log: str) -> None:
    figures = report("--from", shadow_log, "-k", "1")
    served, b = figures["shadow"]  # type: ignore[misc]
    assert (served["served_version"], served["shadow_version"], served["k"]) == ("v1", "v2", 1)
    assert (served["requests"], served["overlap"], served["judged"]) == (6, 0.5, 3)
    assert served["served_hit_rate"]["hits"] == 1 and served["shadow_hit_rate"]["hits"] == 2
    assert (b["served_version"], b["requests"]) == ("v3", 1)
    assert figures["shadow_lists"] == 8
    assert {a["arm"] for a in figures["arms"]} == {"primary", "b"}  # type: ignore[attr-defined]
    assert report("--from", shadow_log)["shadow"][0]["overlap"] == pytest.approx(7 / 9)  # type: ignore[index]


def test_the_shadow_table_and_plot(shadow_log: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--from", shadow_log], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "shadow beside served on the same requests" in result.output
    assert "0.778" in result.output and "8 shadow lists" in result.output
    pytest.importorskip("matplotlib")
    png = tmp_path / "shadow.png"
    drawn = runner.invoke(app, ["report", "--from", shadow_log, "--plot", str(png)])
    assert drawn.exit_code == 0, drawn.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_shadow_has_no_table_without_shadow_lists(log_url: str) -> None:
    result = runner.invoke(app, ["report", "--from", log_url], env={"COLUMNS": "200"})
    assert "shadow beside served" not in result.output
    assert report("--from", log_url)["shadow"] == []
    assert runner.invoke(app, ["report", "--from", log_url, "-k", "0"]).exit_code == 2
