"""A replay's report: the figures as a dict (the JSON), a table and a plot."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from graphrec.console import err
from graphrec.replay import Outcome, Source
from graphrec.replay_score import (
    Scored,
    fallback_reasons,
    group_figures,
    rolling_hit_rate,
    version_changes,
)

out = Console()


@dataclass
class ReplayReport:
    """A replay's figures: online (the live service), offline (frozen graph), lag."""

    source: Source
    k: int
    outcome: Outcome
    offline: list[Scored] | None
    lag: dict[str, float] | None

    def as_dict(self) -> dict[str, object]:
        scored = self.outcome.scored
        return {
            "dataset": self.source.name,
            "events_before": len(self.source.before),
            "events_after": len(self.source.after),
            "scored": len(scored),
            "repeats_not_scored": self.outcome.repeats,
            "k": self.k,
            "seconds": self.outcome.seconds,
            "events_per_s": round(self.outcome.produced / max(self.outcome.seconds, 1e-9), 1),
            "online": group_figures(scored, self.k),
            "offline": group_figures(self.offline, self.k) if self.offline is not None else None,
            "offline_version": self.offline[0].model_version if self.offline else None,
            "fallback_reasons": fallback_reasons(scored),
            "offline_fallback_reasons": fallback_reasons(self.offline or []),
            "model_versions": [asdict(c) for c in version_changes(scored)],
            "lag": self.lag,
        }


def print_table(report: ReplayReport) -> None:
    """Online figures per group, the offline ones beside them, and the lag below."""
    k = report.k
    online = group_figures(report.outcome.scored, k)
    figures = group_figures(report.offline, k) if report.offline is not None else None
    table = Table(
        "group",
        "events",
        f"HitRate@{k}",
        f"MRR@{k}",
        f"NDCG@{k}",
        "fallback",
        title=f"replay of {report.source.name}: online (live service)",
    )
    if figures:
        table.add_column(f"offline HitRate@{k}")
        table.add_column(f"offline NDCG@{k}")
    for name, row in online.items():
        cells = [
            name,
            str(row["n"]),
            f"{row['hit_rate']:.4f}",
            f"{row['mrr']:.4f}",
            f"{row['ndcg']:.4f}",
            f"{row['fallback_share']:.1%}",
        ]
        if figures:
            off = figures[name]
            cells += [f"{off['hit_rate']:.4f}", f"{off['ndcg']:.4f}"]
        table.add_row(*cells)
    out.print(table)
    if report.lag:
        lag = report.lag
        out.print(
            f"lag, produce → answer: p50 {lag['p50_s']} s, p90 {lag['p90_s']} s, max "
            f"{lag['max_s']} s over {lag['probed']} probed events ({lag['timeouts']} "
            "timeouts)",
            highlight=False,
        )


def plot(report: ReplayReport, window: int, path: Path) -> None:
    """Rolling hit rate over the replayed events, a vertical line where the version changed,
    the offline hit rate as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = report.outcome.scored
    x, y = rolling_hit_rate(scored, window)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(x, y, label=f"online hit@{report.k}, last {window} scored events")
    for change in version_changes(scored)[1:]:
        ax.axvline(change.from_event, color="grey", linestyle=":")
        ax.text(change.from_event, 0, f" {change.model_version}", rotation=90, fontsize=7)
    if report.offline:
        offline = group_figures(report.offline, report.k)["all"]["hit_rate"]
        ax.axhline(offline, color="black", linestyle="--", label="offline (frozen graph)")
    ax.set_xlabel("event after the split")
    ax.set_ylabel(f"HitRate@{report.k}")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right")
    ax.set_title(f"replay of {report.source.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    err.print(f"wrote {path}", highlight=False)
