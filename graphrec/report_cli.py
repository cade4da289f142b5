"""``graphrec report``: the recommendation log joined with the events that followed it
(``serving.attribution``): impressions, CTR and conversion per model version and A/B arm,
with 95 % Wilson intervals; and, when the log holds a shadow version's lists, the shadow
beside the served version on the same requests (``serving.shadowcompare``: overlap@K and
the hit rate of each list on the subject's next event). As tables, JSON or a PNG.

Both sides come from the log at ``--from`` (the recommendation log's topic and the events
topic, read whole, without a consumer group), or from files: ``--recommendations`` holds
one record a line as the log does, ``--events`` the files ``graphrec import`` reads.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from graphrec.config import load_config
from graphrec.console import err
from graphrec.reclog import recommendations_topic
from graphstore import Behaviour, Interaction
from serving.attribution import Attribution, Rate, attribute
from serving.logrecord import BadLogRecord, LoggedRecommendation, decode
from serving.shadowcompare import ShadowFigures, compare
from streaming.codec import BadRecord, decode_event
from streaming.topicread import read_topic
from streaming.urls import parse_log_url

out = Console()
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(text: str) -> float:
    """Seconds of ``90``, ``90s``, ``30m``, ``2h`` or ``1d``."""
    found = DURATION.match(text.lower())
    if found is None or float(found[1]) <= 0:
        raise typer.BadParameter(f"a positive duration like 30m, 90s or 2h, got {text!r}")
    return float(found[1]) * UNITS[found[2]]


def _behaviours(text: str) -> tuple[Behaviour, ...] | None:
    """``auto`` → None; else a comma-separated list of behaviour names."""
    if text.strip().lower() == "auto":
        return None
    try:
        return tuple(Behaviour[name.strip().upper()] for name in text.split(",") if name.strip())
    except KeyError:
        raise typer.BadParameter(f"auto, or view, click, cart, purchase; got {text!r}") from None


def _needs_matplotlib(path: Path | None) -> Path | None:
    """``--plot`` needs the ``plot`` extra: say so in one line before any work starts."""
    if path is not None and importlib.util.find_spec("matplotlib") is None:
        typer.echo("error: --plot needs matplotlib: pip install 'graphrec[plot]'", err=True)
        raise typer.Exit(2)
    return path


FromOpt = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Log URL holding the recommendation log (topic recommendations, or "
        "?recommendations=NAME) and the events; default: config.",
    ),
]
RecsOpt = Annotated[
    Path | None,
    typer.Option(
        "--recommendations",
        exists=True,
        dir_okay=False,
        help="Read the recommendation log from this file (one JSON record a line) instead.",
    ),
]
EventsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--events",
        exists=True,
        dir_okay=False,
        help="Read the events from these files (as `graphrec import` does) instead.",
    ),
]
WindowOpt = Annotated[
    str, typer.Option(help="How long after a recommendation an event counts: 30m, 90s, 2h.")
]
ClicksOpt = Annotated[
    str,
    typer.Option(
        help="Behaviours that count as clicks: auto (click, cart, purchase; every behaviour "
        "when the events hold no click or cart) or a list like click,cart."
    ),
]
KOpt = Annotated[
    int,
    typer.Option(
        "-k", "--k", min=1, help="Shadow beside served: the top K items compared and judged."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")]
PlotOpt = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        callback=_needs_matplotlib,
        help="Draw CTR and conversion per version and arm (and the shadow's hit rate beside "
        "the served one's) to a PNG (needs graphrec\\[plot]).",
    ),
]


def report_command(
    source: FromOpt = None,
    recommendations: RecsOpt = None,
    events: EventsOpt = None,
    window: WindowOpt = "30m",
    clicks: ClicksOpt = "auto",
    k: KOpt = 10,
    as_json: JsonOpt = False,
    plot_path: PlotOpt = None,
) -> None:
    """CTR and conversion per model version and A/B arm: each click, cart or purchase of a
    recommended item by the same user or session within the window after the recommendation
    is attributed to the most recent recommendation showing it, once. Every answer is an
    impression; CTR and conversion rate are the shares of impressions followed by a click or
    a purchase, with 95 % Wilson intervals. With a shadow version's lists in the log: their
    mean overlap@K with the served lists of the same requests, and the hit rate of each on
    the subject's next event within the window.
    """
    window_s, counted = _duration(window), _behaviours(clicks)
    url = source or load_config().log_url
    if not (recommendations and events):
        parse_log_url(url)  # a bad URL fails before any reading
    recs, bad_recs = _read_recommendations(url, recommendations)
    acts, bad_events = _read_events(url, events)
    report = attribute(recs, acts, window_s, counted)
    shadow = compare(recs, acts, window_s, k)
    unreadable = {"recommendations": bad_recs, "events": bad_events}
    if plot_path is not None:
        plot(report, plot_path, shadow)
    if as_json:
        shadows = [f.as_dict() for f in shadow]
        typer.echo(json.dumps({**report.as_dict(), "shadow": shadows, "unreadable": unreadable}))
        return
    out.print(_table(report))
    if shadow:
        out.print(_shadow_table(shadow, window_s))
    out.print(_summary(report, unreadable), highlight=False)


def _read_recommendations(url: str, path: Path | None) -> tuple[list[LoggedRecommendation], int]:
    """The recommendation log's records in log order, and how many were not records."""
    if path is not None:
        values: Sequence[bytes] = [line for line in path.read_bytes().splitlines() if line.strip()]
    else:
        values = [r.value for r in read_topic(url, recommendations_topic(url))]
    records, bad = [], 0
    for value in values:
        try:
            records.append(decode(value))
        except BadLogRecord:
            bad += 1
    return records, bad


def _read_events(url: str, paths: list[Path] | None) -> tuple[list[Interaction], int]:
    """The events, and how many records of the events topic were not events."""
    if paths:
        from gnn.datasets.files import read_interactions

        return [i for data in read_interactions(paths) for i in data.interactions], 0
    found, bad = [], 0
    for record in read_topic(url, parse_log_url(url).events):
        try:
            found.append(decode_event(record.value))
        except BadRecord:
            bad += 1
    return found, bad


def _interval(rate: Rate) -> str:
    return f"{rate.value:.2%} [{rate.low:.2%}, {rate.high:.2%}]"


def _table(report: Attribution) -> Table:
    table = Table(
        "version",
        "arm",
        "impressions",
        "items shown",
        "fallbacks",
        "clicks",
        "CTR [95% CI]",
        "purchases",
        "conversion [95% CI]",
        title=f"attribution within {report.window_s:g} s of a recommendation",
    )
    for a in report.arms:
        table.add_row(
            a.model_version,
            a.arm,
            f"{a.impressions:,}",
            f"{a.items_shown:,}",
            f"{a.fallbacks:,}",
            f"{a.clicks:,}",
            _interval(a.ctr),
            f"{a.conversions:,}",
            _interval(a.conversion_rate),
        )
    return table


def _shadow_table(shadow: list[ShadowFigures], window_s: float) -> Table:
    k = shadow[0].k
    table = Table(
        "served",
        "shadow",
        "requests",
        f"overlap@{k}",
        "judged",
        f"served hit@{k} [95% CI]",
        f"shadow hit@{k} [95% CI]",
        title=f"shadow beside served on the same requests (next event within {window_s:g} s)",
    )
    for f in shadow:
        table.add_row(
            f.served_version,
            f.shadow_version,
            f"{f.requests:,}",
            f"{f.overlap:.3f}",
            f"{f.judged:,}",
            _interval(f.served_hit_rate),
            _interval(f.shadow_hit_rate),
        )
    return table


def _summary(report: Attribution, unreadable: dict[str, int]) -> str:
    lines = [
        f"clicks: {', '.join(report.click_behaviours)}; conversions: purchase",
        f"recommendations: {report.recommendations:,} ({report.repeated_records:,} repeated "
        f"records left out; {report.item_subjects:,} for items and "
        f"{report.shadow_lists:,} shadow lists, not impressions)",
        f"events: {report.events:,} ({report.repeated_events:,} repeated); attributed "
        f"{report.attributed:,}, not attributed {report.unattributed:,}",
    ]
    if any(unreadable.values()):
        lines.append(
            f"unreadable: {unreadable['recommendations']:,} recommendation records, "
            f"{unreadable['events']:,} events"
        )
    return "\n".join(lines)


def plot(report: Attribution, path: Path, shadow: list[ShadowFigures] | None = None) -> None:
    """CTR and conversion rate per version and arm as bars with their Wilson intervals; with
    ``shadow``, a third panel: each list's hit rate, served beside shadow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{a.model_version}\n{a.arm}" for a in report.arms]
    panels = [
        ("CTR", names, [a.ctr for a in report.arms]),
        ("conversion rate", names, [a.conversion_rate for a in report.arms]),
    ]
    if shadow:
        labels = [f"{f.served_version}\nserved" for f in shadow]
        labels += [f"{f.shadow_version}\nshadow" for f in shadow]
        hits = [f.served_hit_rate for f in shadow] + [f.shadow_hit_rate for f in shadow]
        panels.append((f"hit@{shadow[0].k}, same requests", labels, hits))
    width = max(6.0, 1.6 * len(names) + 3) * len(panels) / 2
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 4))
    for ax, (title, labels, rates) in zip(axes, panels, strict=True):
        _bars(ax, title, labels, rates)
    fig.suptitle(f"attributed within {report.window_s:g} s of a recommendation")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    err.print(f"wrote {path}", highlight=False)


def _bars(ax: Any, title: str, labels: list[str], rates: list[Rate]) -> None:
    values = [r.value for r in rates]
    errors = [[r.value - r.low for r in rates], [r.high - r.value for r in rates]]
    ax.bar(range(len(labels)), values, yerr=errors, capsize=4)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_title(f"{title} (95% Wilson interval)")
    ax.set_ylim(bottom=0)
