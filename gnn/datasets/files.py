"""Users' files as domain records: interactions and catalogue items, and the rows rejected.

A file with a user or session column holds interactions; one with an item column only (a
RecBole ``.item`` file, a catalogue) holds items. Columns are named by ``Columns`` or found
by their common names (``AUTO``). Only user (or session) and item are required:

* time: seconds since the epoch (milliseconds when above 1e11) or ISO 8601 (naive: UTC).
  Without a time column, rows are one second apart in file order, from ``SYNTHETIC_START``;
* type: view, click, cart, purchase (any case; also add_to_cart, buy, 1-4); default view;
* actor: the user when the row has one, else the session;
* category: a path ``root/child/leaf`` (``>`` and ``.`` separate too); features: numbers.
  Rows of an interaction file with a category or features also describe their item (first
  row wins).

A row that cannot be read goes to ``rejects`` with its line number and reason (``strict``:
raises ``BadRow`` instead); every other row is kept. RecBole ``.user`` files are read and
checked, but the graph has no user attributes, so nothing of them is kept.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gnn.datasets.formats import BadFile, Row, read_rows
from graphstore import Behaviour, Interaction, ItemRecord, NodeKind, NodeRef

SYNTHETIC_START = 946_684_800.0  # 2000-01-01T00:00:00Z
MILLISECONDS_ABOVE = 1e11  # a "seconds" value this large is milliseconds (year 5138 otherwise)
AUTO = {
    "user": ("user_id", "user", "userid", "visitor_id", "visitorid", "customer_id"),
    "item": ("item_id", "item", "itemid", "movie_id", "product_id", "productid"),
    "time": ("timestamp", "ts", "time", "event_time", "datetime"),
    "type": ("type", "event_type", "behaviour", "behavior", "action", "event"),
    "session": ("session_id", "session", "user_session"),
    "category": ("category", "category_path", "category_code", "categories"),
    "title": ("title", "name", "movie_title"),
}
BEHAVIOUR_NAMES = {
    **{b.name.lower(): b for b in Behaviour},
    **{str(int(b)): b for b in Behaviour},
    "add_to_cart": Behaviour.CART,
    "addtocart": Behaviour.CART,
    "buy": Behaviour.PURCHASE,
    "transaction": Behaviour.PURCHASE,
}
CATEGORY_SEPARATORS = re.compile(r"\s*[/>.]\s*")


class BadRow(ValueError):
    """A rejected row when reading strictly: ``str()`` is ``path:line: reason``."""


@dataclass(frozen=True)
class Columns:
    """Which column holds what; ``None``: found by its common names (``AUTO``), if any."""

    user: str | None = None
    item: str | None = None
    time: str | None = None
    type: str | None = None
    session: str | None = None
    category: str | None = None
    title: str | None = None
    features: tuple[str, ...] = ()

    def resolve(self, header: list[str], path: Path) -> Columns:
        """The columns of a file with ``header``; ``BadFile`` for a named column it lacks."""
        lower = {h.lower(): h for h in header}
        found: dict[str, str | None] = {}
        for role in AUTO:
            named = getattr(self, role)
            if named is not None and named not in header:
                raise BadFile(f"{path}: no column {named!r} (--{role}); columns: {header}")
            found[role] = named or next((lower[c] for c in AUTO[role] if c in lower), None)
        missing = [f for f in self.features if f not in header]
        if missing:
            raise BadFile(f"{path}: no feature columns {missing}; columns: {header}")
        if found["item"] is None:
            raise BadFile(f"{path}: no item column (name it with --item); columns: {header}")
        return Columns(**found, features=self.features)


@dataclass(frozen=True)
class Reject:
    """A row not imported: where it is, why, and its text."""

    path: Path
    line: int
    reason: str
    row: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class FileData:
    """What a file held: its interactions (file order), items, rejects and row count."""

    interactions: list[Interaction] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    rows: int = 0
    next_synthetic_ts: float = SYNTHETIC_START


class _Skip(Exception):
    """A row's reason for rejection."""


def read_file(
    path: Path,
    columns: Columns = Columns(),
    *,
    strict: bool = False,
    synthetic_ts: float = SYNTHETIC_START,
    ts_range: tuple[float, float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> FileData:
    """Read one file (see the module docstring). ``synthetic_ts``: the first made-up time
    when the file has no time column; ``ts_range``: times outside it are rejected."""
    out = FileData(next_synthetic_ts=synthetic_ts)

    def reject(line: int, reason: str, raw: str) -> None:
        bad = Reject(path, line, reason, raw)
        if strict:
            raise BadRow(str(bad))
        out.rejects.append(bad)

    header, rows = read_rows(path, reject)
    if path.suffix.lower() == ".user":  # checked, counted, not kept
        out.rows = sum(1 for _ in rows)
        return out
    if not header:
        return out
    cols = columns.resolve(header, path)
    events = cols.user is not None or cols.session is not None
    seen_items: set[str] = set()
    for line, row in rows:
        out.rows += 1
        if progress is not None and out.rows % 10_000 == 0:
            progress(10_000)
        try:
            ts = _time(row, cols, out, ts_range)
            item = _item(row, cols, ts)
            if events:
                out.interactions.append(_interaction(row, cols, f"{path.name}:{line}", ts))
            if item is not None and item.item_id not in seen_items:
                seen_items.add(item.item_id)
                out.items.append(item)
        except _Skip as exc:
            reject(line, str(exc), _as_text(row))
    if progress is not None:
        progress(out.rows % 10_000)
    return out


def read_interactions(paths: Iterable[Path], columns: Columns = Columns()) -> list[FileData]:
    """Several files strictly (``BadRow`` on the first bad row), one synthetic clock."""
    out: list[FileData] = []
    clock = SYNTHETIC_START
    for path in paths:
        data = read_file(path, columns, strict=True, synthetic_ts=clock)
        clock = data.next_synthetic_ts
        out.append(data)
    return out


def write_rejects(path: Path, rejects: Iterable[Reject]) -> int:
    """Write rejects as CSV ``file,line,reason,row``; how many were written."""
    n = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "line", "reason", "row"])
        for r in rejects:
            writer.writerow([str(r.path), r.line, r.reason, r.row])
            n += 1
    return n


def _required(row: Row, column: str) -> str:
    value = row.get(column)
    if value is None:
        raise _Skip(f"missing column {column!r}")
    if not value.strip():
        raise _Skip(f"empty {column!r}")
    return value.strip()


def _interaction(row: Row, cols: Columns, event_id: str, ts: float) -> Interaction:
    user = (row.get(cols.user) or "").strip() if cols.user else ""
    session = (row.get(cols.session) or "").strip() if cols.session else ""
    if not user and not session:
        wanted = " or ".join(repr(c) for c in (cols.user, cols.session) if c)
        raise _Skip(f"empty or missing {wanted}")
    actor = NodeRef(NodeKind.USER, user) if user else NodeRef(NodeKind.SESSION, session)
    item = _required(row, cols.item or "item_id")
    kind = Behaviour.VIEW
    if cols.type is not None:
        name = _required(row, cols.type).lower()
        if name not in BEHAVIOUR_NAMES:
            raise _Skip(f"unknown behaviour {name!r} in {cols.type!r}: view, click, cart, purchase")
        kind = BEHAVIOUR_NAMES[name]
    return Interaction(event_id, actor, item, kind, ts)


def _item(row: Row, cols: Columns, ts: float) -> ItemRecord | None:
    """The row's item, when the file describes items (a catalogue, or content columns)."""
    describes = cols.user is None and cols.session is None
    if not (describes or cols.category or cols.features):
        return None
    item_id = _required(row, cols.item or "item_id")
    path: tuple[str, ...] = ()
    if cols.category:
        text = (row.get(cols.category) or "").strip()
        path = tuple(p for p in CATEGORY_SEPARATORS.split(text) if p)
    features = []
    for name in cols.features:
        value = (row.get(name) or "").strip()
        if value:
            try:
                features.append((name, float(value)))
            except ValueError:
                raise _Skip(f"feature {name!r}: {value!r} is not a number") from None
    title = (row.get(cols.title) or "").strip() if cols.title else ""
    return ItemRecord(item_id, path, title, tuple(features), ts=ts if cols.time else 0.0)


def _time(row: Row, cols: Columns, out: FileData, ts_range: tuple[float, float] | None) -> float:
    if cols.time is None:
        ts = out.next_synthetic_ts
        out.next_synthetic_ts += 1.0
        return ts
    text = _required(row, cols.time)
    parsed = parse_time(text)
    if parsed is None:
        raise _Skip(f"bad timestamp {text!r} in {cols.time!r}: seconds or ISO 8601")
    ts = parsed
    if ts_range is not None and not ts_range[0] <= ts <= ts_range[1]:
        raise _Skip(f"bad timestamp {text!r}: outside the accepted range")
    return ts


def parse_time(text: str) -> float | None:
    """Seconds since the epoch of a number (milliseconds above 1e11) or an ISO 8601 time."""
    try:
        value = float(text)
    except ValueError:
        try:
            stamp = dt.datetime.fromisoformat(text.removesuffix(" UTC"))
        except ValueError:
            return None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        return stamp.timestamp()
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value / 1000.0 if abs(value) > MILLISECONDS_ABOVE else value


def _as_text(row: Row) -> str:
    return ",".join(f"{k}={v}" for k, v in row.items())


__all__ = [
    "AUTO",
    "BadFile",
    "BadRow",
    "Columns",
    "FileData",
    "Reject",
    "read_file",
    "read_interactions",
    "write_rejects",
]
