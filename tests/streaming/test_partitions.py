"""``graphrec produce|import --partitions N``: the log's topics are created with N partitions,
and an existing topic with another count is named on stderr and left as it is."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from graphrec.cli import app
from streaming.log import EventLog
from streaming.urls import create_log_topics

runner = CliRunner()


def test_create_log_topics_creates_missing_topics_with_the_count(tmp_path: Path) -> None:
    url = f"log://{tmp_path / 'log'}?events=clicks&items=catalogue"
    assert create_log_topics(url, 6) == {"catalogue": 6, "clicks": 6}
    assert create_log_topics(url, 2) == {"catalogue": 6, "clicks": 6}  # never repartitioned


def test_produce_with_partitions_spreads_events_over_them(tmp_path: Path) -> None:
    url = f"log://{tmp_path / 'log'}"
    result = runner.invoke(app, ["produce", "--events", "600", "--partitions", "6", "--to", url])
    assert result.exit_code == 0, result.output
    log = EventLog(tmp_path / "log")
    ends = log.end_offsets("events")
    assert len(ends) == 6 and all(n > 0 for n in ends.values())
    assert sum(ends.values()) == 600


def test_produce_names_an_existing_topic_with_another_count(tmp_path: Path) -> None:
    url = f"log://{tmp_path / 'log'}"
    runner.invoke(app, ["produce", "--events", "100", "--partitions", "3", "--to", url])
    result = runner.invoke(app, ["produce", "--events", "100", "--partitions", "5", "--to", url])
    assert result.exit_code == 0
    assert "topic events already exists with 3 partitions, not 5" in result.stderr
    assert EventLog(tmp_path / "log").partitions("events") == 3


def test_import_with_partitions_creates_the_topics(tmp_path: Path) -> None:
    data = tmp_path / "clicks.csv"
    data.write_text("user_id,item_id,timestamp\nu1,i1,1700000000\nu2,i2,1700000001\n")
    url = f"log://{tmp_path / 'log'}"
    result = runner.invoke(app, ["import", str(data), "--partitions", "8", "--to", url])
    assert result.exit_code == 0, result.output
    log = EventLog(tmp_path / "log")
    assert (log.partitions("events"), log.partitions("items")) == (8, 8)
