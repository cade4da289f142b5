"""The offline figure beside a replay's online one: the same events scored against the model
version the replay started with, over a graph frozen at the split.

The frozen graph is an embedded store holding the catalogue and the events before the split;
the serving core (``serving.recommender``, the code the service runs) answers the same
requests over it, once per subject (nothing changes after the split, so a subject's answer
does not either). The difference between the two figures is what freshness (the graph and
item table following the stream) and retraining during the replay are worth.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory

from gnn.ann import EXACT_THRESHOLD
from graphrec.replay import History
from graphrec.replay_score import Scored, rank_of, reason_kind
from graphstore import Interaction, ItemRecord, NodeRef, open_store
from serving.convert import query_of
from serving.engine import Engine
from serving.recommender import Recommender, RecommenderConfig
from serving.types import Recommendation

CHUNK = 64  # subjects per batched recommend
# The service bounds each store call (2 s by default) and answers from popular items past it;
# nothing competes for this private store, and a figure must not depend on the machine's load.
STORE_TIMEOUT_S = 600.0


def load_engine(models_dir: Path, version: str) -> Engine:
    """The served version ``version`` from ``models_dir``, loaded in this process."""
    path = models_dir / version
    if not path.is_dir():
        raise FileNotFoundError(
            f"model version {version} is not in {models_dir}: pass the service's --models"
        )
    return Engine.load(path, EXACT_THRESHOLD)


def offline_scores(
    items: Sequence[ItemRecord],
    before: Sequence[Interaction],
    after: Sequence[Interaction],
    scored: Sequence[Scored],
    engine: Engine,
    k: int,
) -> list[Scored]:
    """``scored`` (events of ``after`` the replay scored) scored again against ``engine``'s
    answers over a graph of ``items`` and ``before`` only."""
    with (
        TemporaryDirectory(prefix="graphrec-replay-") as tmp,
        open_store(f"sqlite://{Path(tmp) / 'graph'}") as store,
    ):
        store.upsert_items(items)
        store.add_interactions(before)
        answers = _answers(
            Recommender(store, lambda: engine, RecommenderConfig(store_timeout_s=STORE_TIMEOUT_S)),
            History(before),
            after,
            scored,
            k,
        )
    return [_rescored(s, answers[after[s.index].actor], after, engine, k) for s in scored]


def _rescored(
    s: Scored, answer: Recommendation | None, after: Sequence[Interaction], engine: Engine, k: int
) -> Scored:
    if answer is None:  # refused: scored as a miss
        return s.ranked(0, engine.version, False)
    rank = rank_of(after[s.index].item_id, [i.item_id for i in answer.items], k)
    reason = reason_kind(answer.fallback_reason) if answer.fallback else ""
    return s.ranked(rank, answer.model_version, answer.fallback, reason)


def _answers(
    recommender: Recommender,
    history: History,
    after: Sequence[Interaction],
    scored: Sequence[Scored],
    k: int,
) -> dict[NodeRef, Recommendation | None]:
    """One answer per subject of the scored events (``None`` where the core refused it)."""
    firsts: dict[NodeRef, Interaction] = {}
    for s in scored:
        firsts.setdefault(after[s.index].actor, after[s.index])
    subjects = list(firsts)
    answers: dict[NodeRef, Recommendation | None] = {}
    for start in range(0, len(subjects), CHUNK):
        chunk = subjects[start : start + CHUNK]
        queries = [query_of(history.request(firsts[a], k)) for a in chunk]
        for actor, answer in zip(chunk, recommender.recommend_many(queries), strict=True):
            answers[actor] = answer if isinstance(answer, Recommendation) else None
    return answers
