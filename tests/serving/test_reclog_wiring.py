"""``graphrec serve``'s recommendation log: on by default, on the log it follows, topic
``recommendations``; another log or topic by URL; off with --no-recommendation-log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from graphrec import serving_cli
from graphrec.cli import app
from graphrec.reclog import recommendations_topic
from serving.reclog import RecommendationLogConfig
from streaming.log import EventLog
from streaming.urls import UnknownLogUrl


def test_the_topic_is_recommendations_unless_the_url_names_another() -> None:
    assert recommendations_topic("log://data/log") == "recommendations"
    assert recommendations_topic("kafka://127.0.0.1:9092/clicks?recommendations=recs") == "recs"
    with pytest.raises(UnknownLogUrl):
        recommendations_topic("http://127.0.0.1:9092")


def served_with(monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, Any]:
    """The keyword arguments `graphrec serve ARGS` builds its service with (not started)."""
    seen: dict[str, Any] = {}

    def record(*_: object, **kwargs: object) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(serving_cli, "Serving", record)
    monkeypatch.setattr(serving_cli, "_run", lambda *_: None)
    result = CliRunner().invoke(app, ["serve", "--store", "memory://", *args])
    assert result.exit_code == 0, result.output
    return seen


def written_to(config: RecommendationLogConfig, log: Path, topic: str) -> int:
    config.connect()([(b"user:u1", b"{}")])
    events = EventLog(log)
    return sum(len(events.read((topic, p), 0, 10)) for p in range(events.partitions(topic)))


def test_serve_logs_answers_to_the_log_it_follows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    followed = served_with(monkeypatch, "--from", f"log://{tmp_path / 'log'}")
    assert written_to(followed["recommendation_log"], tmp_path / "log", "recommendations") == 1
    other = f"log://{tmp_path / 'other'}?recommendations=answers"
    named = served_with(monkeypatch, "--recommendation-log", other)
    assert written_to(named["recommendation_log"], tmp_path / "other", "answers") == 1
    assert served_with(monkeypatch, "--no-recommendation-log")["recommendation_log"] is None


def test_a_log_and_no_log_together_are_refused() -> None:
    result = CliRunner().invoke(
        app, ["serve", "--recommendation-log", "log://x", "--no-recommendation-log"]
    )
    assert result.exit_code == 2
    assert "exclude each other" in result.output
