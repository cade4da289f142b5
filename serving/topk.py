"""Top-K maximum-inner-product search over the item embedding table.

Small tables (and small ``allowed`` sets) are searched exactly with numpy; from
``exact_threshold`` rows on, candidates come from a usearch HNSW index (``gnn.ann``: metric
"ip"; the model version's own when it has one, else built here) and are re-scored exactly from
the table, so scores are the same dot products on both paths.

Thread safety: any number of threads may search while one or more threads upsert.

* The numpy table is copy-on-write: an upsert builds a new array and then swaps the reference,
  and a search reads that reference once. A search therefore never sees a half-written row:
  every row it scores is as of one whole upsert, every row it returns is below the size of that
  table (tables only grow), and every score is that table's exact dot product.
* Upserts are serialised by one lock; every call into usearch (add, remove, search) is
  serialised by another, because an HNSW graph is not safe to search while nodes are removed
  and re-added. The numpy work of a search runs outside both locks.
* A search that overlaps an upsert may still rank a changed row by its old vector, or (approximate
  path) miss a row that is being re-inserted; every search that starts after ``upsert`` returns
  sees the new rows.

Each upsert copies the table (O(N·d)): batch row updates where you can.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gnn.ann import EXACT_THRESHOLD, BatchMatches, Index, Matches, build_index

Rows = npt.NDArray[np.int64]
ScoreArray = npt.NDArray[np.float32]
Vectors = npt.NDArray[np.float32]


class ItemIndex:
    """Top-K inner-product search over item vectors; rows can be updated or appended while
    searches run (see the module docstring for the exact guarantee)."""

    def __init__(
        self,
        vectors: np.ndarray,
        exact_threshold: int = EXACT_THRESHOLD,
        ann: Index | None = None,
        copy: bool = True,
    ) -> None:
        """``vectors`` is the ``[N, d]`` float32 table: copied, or with ``copy=False`` taken
        over (made read-only; the caller must not write to it through another view). Tables
        with at least ``exact_threshold`` rows are also indexed with usearch for approximate
        search: ``ann`` when given (``gnn.ann``'s index over exactly these rows, e.g. a model
        version's; it is taken over, not copied), else an index built here."""
        if not _is_int(exact_threshold) or exact_threshold < 0:
            raise ValueError(f"exact_threshold must be an integer >= 0, got {exact_threshold!r}")
        table = _as_matrix(vectors, "vectors", dim=None)
        table = table.copy() if copy or table is not vectors else table
        table.flags.writeable = False
        if ann is not None and (len(ann) != len(table) or ann.ndim != table.shape[1]):
            raise ValueError(
                f"ann holds {len(ann)} rows of {ann.ndim}, the table {table.shape[0]} of "
                f"{table.shape[1]}"
            )
        self._threshold = int(exact_threshold)
        self._table: Vectors = table
        self._upsert_lock = threading.Lock()
        self._ann_lock = threading.Lock()
        self._ann: Index | None = None
        if len(table) >= self._threshold:
            self._ann = build_index(table) if ann is None else ann

    @property
    def size(self) -> int:
        """Number of rows N."""
        return len(self._table)

    @property
    def dim(self) -> int:
        """Vector dimension d."""
        return int(self._table.shape[1])

    def vectors(self) -> Vectors:
        """A read-only view of the current ``[N, d]`` table (a consistent snapshot: later
        upserts do not change it)."""
        return self._table.view()

    def upsert(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Replace rows ``< size`` and append rows ``size, size + 1, ...`` with ``vectors``
        (``[m, d]`` float32). Rows must be distinct and any new rows contiguous from ``size``."""
        with self._upsert_lock:
            old = self._table
            n = len(old)
            ids = _as_rows(rows, "rows")
            new_vectors = _as_matrix(vectors, "vectors", dim=old.shape[1])
            if len(ids) != len(new_vectors):
                raise ValueError(f"{len(ids)} rows but {len(new_vectors)} vectors")
            if len(ids) == 0:
                return
            if len(np.unique(ids)) != len(ids):
                raise ValueError("rows must be distinct")
            appended = np.sort(ids[ids >= n])
            if not np.array_equal(appended, np.arange(n, n + len(appended))):
                got = appended[:5].tolist()
                raise ValueError(f"new rows must be the appends {n}, {n + 1}, ...; got {got}")

            table = np.empty((n + len(appended), old.shape[1]), np.float32)
            table[:n] = old
            table[ids] = new_vectors
            table.flags.writeable = False

            ann = self._ann
            if ann is not None:
                changed = ids[ids < n]
                with self._ann_lock:
                    if len(changed):
                        ann.remove(changed)
                    ann.add(ids, new_vectors, threads=1)
            elif len(table) >= self._threshold:
                self._ann = build_index(table)  # not yet visible to searches: no lock needed
            self._table = table

    def search(
        self,
        query: np.ndarray,
        k: int,
        exclude: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[Rows, ScoreArray]:
        """The ``k`` rows with the largest dot product with ``query`` (``[d]`` float32), best
        first; ties go to the smaller row. Returns ``(rows, scores)`` with
        ``min(k, eligible rows)`` entries. ``exclude`` rows are never returned; if ``allowed`` is
        given only those rows are eligible. Rows in either that are not (yet) in the table are
        ignored."""
        table, ann = self._table, self._ann
        n = len(table)
        q = _as_vector(query, table.shape[1])
        _check_k(k)
        skip = _in_range(exclude, "exclude", n)
        if allowed is not None:
            candidates = np.setdiff1d(_in_range(allowed, "allowed", n), skip, assume_unique=True)
            if ann is None or len(candidates) <= self._threshold:
                return _rank(candidates, table[candidates] @ q, k)
            return self._search_ann(ann, table, q, k, skip, candidates)
        if ann is None:
            return _exact(table, q, k, skip)
        return self._search_ann(ann, table, q, k, skip, None)

    def search_many(
        self,
        queries: np.ndarray,
        ks: Sequence[int],
        excludes: Sequence[np.ndarray | None],
        alloweds: Sequence[np.ndarray | None],
    ) -> list[tuple[Rows, ScoreArray]]:
        """:meth:`search` for each row of ``queries`` (``[q, d]`` float32) with its own ``k``,
        ``exclude`` and ``allowed``; the same answers. The queries without ``allowed`` are
        served together: one matrix product on the exact path, or one batched usearch call
        (spread over the cores, outside the GIL) whose candidates are re-scored exactly."""
        table, ann = self._table, self._ann
        n = len(table)
        qs = _as_matrix(queries, "queries", dim=table.shape[1])
        if not len(qs) == len(ks) == len(excludes) == len(alloweds):
            raise ValueError(
                f"{len(qs)} queries but {len(ks)} k, {len(excludes)} exclude and "
                f"{len(alloweds)} allowed"
            )
        for k in ks:
            _check_k(k)
        out: list[tuple[Rows, ScoreArray]] = [(_NO_ROWS, _NO_SCORES)] * len(qs)
        together = [i for i, allowed in enumerate(alloweds) if allowed is None]
        for i, allowed in enumerate(alloweds):
            if allowed is not None:
                out[i] = self.search(qs[i], ks[i], excludes[i], allowed)
        if not together:
            return out
        skips = {i: _in_range(excludes[i], "exclude", n) for i in together}
        if ann is None:
            block = qs[together] @ table.T
            for j, i in enumerate(together):
                out[i] = _exact_of_scores(block[j], ks[i], skips[i])
            return out
        wants = {i: min(ks[i], n - len(skips[i])) for i in together}
        together = [i for i in together if wants[i] > 0]  # the rest stay empty
        if not together:
            return out
        count = max(wants[i] + len(skips[i]) for i in together)
        with self._ann_lock:
            count = min(count, len(ann))
            found = _keys_per_query(
                ann.search(qs[together], count, threads=min(len(together), _CORES)),
                len(together),
            )
        for j, i in enumerate(together):
            keys = found[j][found[j] < n]  # rows appended after our snapshot are not ours
            if len(skips[i]):
                keys = keys[~np.isin(keys, skips[i])]
            if len(keys) >= wants[i]:
                out[i] = _rank(keys, table[keys] @ qs[i], wants[i])
            else:  # too many of the candidates were excluded: widen this one alone
                out[i] = self._search_ann(ann, table, qs[i], ks[i], skips[i], None)
        return out

    def _search_ann(
        self,
        ann: Index,
        table: Vectors,
        q: Vectors,
        k: int,
        skip: Rows,
        allowed: Rows | None,
    ) -> tuple[Rows, ScoreArray]:
        """Over-fetch from usearch, drop ineligible rows, re-score exactly; widen the fetch
        until ``k`` eligible rows are found, and fall back to exact search if the graph cannot
        supply them."""
        n = len(table)
        eligible = n - len(skip) if allowed is None else len(allowed)
        want = min(k, eligible)
        if want == 0:
            return _NO_ROWS, np.empty(0, np.float32)
        count = want + len(skip)
        if allowed is not None:
            count = math.ceil(count * n / len(allowed))
        while True:
            with self._ann_lock:
                available = len(ann)
                count = min(count, available)
                keys = np.asarray(ann.search(q, count, threads=1).keys, np.int64)
            keys = keys[keys < n]
            if len(skip):
                keys = keys[~np.isin(keys, skip)]
            if allowed is not None:
                keys = keys[np.isin(keys, allowed)]
            if len(keys) >= want:
                return _rank(keys, table[keys] @ q, want)
            if count >= available:
                break
            count *= 2
        if allowed is not None:
            return _rank(allowed, table[allowed] @ q, want)
        return _exact(table, q, want, skip)


def exact_topk(table: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Plain numpy reference: the rows of the ``k`` largest ``table @ query``, best first."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = table @ query
    k = min(k, len(scores))
    if k == 0:
        return np.empty(0, np.int64)
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


_NO_ROWS: Rows = np.empty(0, np.int64)
_NO_SCORES: ScoreArray = np.empty(0, np.float32)
_CORES = os.cpu_count() or 1


def _keys_per_query(matches: BatchMatches | Matches, queries: int) -> list[Rows]:
    """Found keys of each query of a usearch search (one query comes back as plain Matches)."""
    if isinstance(matches, BatchMatches):
        return [np.asarray(matches.keys[i, : matches.counts[i]], np.int64) for i in range(queries)]
    return [np.asarray(matches.keys, np.int64)]


def _exact(table: Vectors, q: Vectors, k: int, skip: Rows) -> tuple[Rows, ScoreArray]:
    """Exact search over the whole table minus the ``skip`` rows."""
    return _exact_of_scores(table @ q, k, skip)


def _exact_of_scores(scores: np.ndarray, k: int, skip: Rows) -> tuple[Rows, ScoreArray]:
    """The best ``k`` of every row's ``scores`` minus the ``skip`` rows."""
    rows = np.arange(len(scores), dtype=np.int64)
    if len(skip):
        keep = np.ones(len(scores), bool)
        keep[skip] = False
        rows = rows[keep]
        scores = scores[keep]
    return _rank(rows, scores, k)


def _rank(rows: Rows, scores: np.ndarray, k: int) -> tuple[Rows, ScoreArray]:
    """The ``k`` best ``(row, score)`` pairs, by score descending then row ascending."""
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th largest score
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)
        tied = tied[np.argsort(rows[tied], kind="stable")[: k - len(above)]]
        pick = np.concatenate([above, tied])
    else:
        pick = np.arange(len(scores))
    pick = pick[np.lexsort((rows[pick], -scores[pick]))]
    return rows[pick].astype(np.int64), scores[pick].astype(np.float32)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_k(k: int) -> None:
    if not _is_int(k) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def _as_matrix(value: np.ndarray, name: str, dim: int | None) -> Vectors:
    array = np.asarray(value)
    if array.dtype != np.float32:
        raise ValueError(f"{name} must be float32, got {array.dtype}")
    if array.ndim != 2 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a [n, d] matrix with d >= 1, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns, got {array.shape[1]}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return np.ascontiguousarray(array)


def _as_vector(value: np.ndarray, dim: int) -> Vectors:
    array = np.asarray(value)
    if array.dtype != np.float32:
        raise ValueError(f"query must be float32, got {array.dtype}")
    if array.shape != (dim,):
        raise ValueError(f"query must have shape ({dim},), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("query must be finite (no NaN or inf)")
    return np.ascontiguousarray(array)


def _as_rows(value: np.ndarray, name: str) -> Rows:
    """A 1-D array of non-negative integer rows as int64 (an empty array of any dtype is fine)."""
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of rows, got shape {array.shape}")
    if array.size == 0:
        return _NO_ROWS
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got {array.dtype}")
    rows = array.astype(np.int64)
    if rows.min() < 0:
        raise ValueError(f"{name} must be non-negative (and fit in int64)")
    return rows


def _in_range(value: np.ndarray | None, name: str, n: int) -> Rows:
    """Sorted distinct rows of ``value`` below ``n`` (rows the table does not have yet are
    ignored)."""
    if value is None:
        return _NO_ROWS
    rows = np.unique(_as_rows(value, name))
    return rows[rows < n]
