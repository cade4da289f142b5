"""ItemIndex: exact search matches brute force, the usearch path keeps its recall and exact
scores, upserts show up in the next search, concurrent searches survive upserts, bad input is
refused; an index restored from a model version serves exactly as the one that was built."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnn.ann import build_index, index_bytes, restore_index
from serving.topk import ItemIndex, exact_topk


def _brute(
    table: np.ndarray,
    query: np.ndarray,
    k: int,
    exclude: list[int] | None = None,
    allowed: list[int] | None = None,
) -> tuple[list[int], list[float]]:
    """Score every eligible row in float64 and sort by (score desc, row asc)."""
    rows = set(range(len(table))) if allowed is None else set(allowed) & set(range(len(table)))
    rows -= set(exclude or [])
    scored = sorted((-float(table[r].astype(np.float64) @ query), r) for r in rows)[:k]
    return [r for _, r in scored], [-s for s, _ in scored]


def _random(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


Problem = tuple[np.ndarray, np.ndarray, int, list[int], list[int] | None]


@st.composite
def _small_problems(draw: st.DrawFn) -> Problem:
    n = draw(st.integers(0, 30))
    d = draw(st.integers(1, 4))
    ints = st.integers(-2, 2)  # small integers: many ties, and float32 arithmetic is exact
    table = np.array(draw(st.lists(ints, min_size=n * d, max_size=n * d)), np.float32)
    query = np.array(draw(st.lists(ints, min_size=d, max_size=d)), np.float32)
    k = draw(st.integers(1, 35))
    rows = st.integers(0, n + 3)  # rows not in the table are ignored
    exclude = draw(st.lists(rows, max_size=10))
    allowed = draw(st.none() | st.lists(rows, max_size=25))
    return table.reshape(n, d), query, k, exclude, allowed


@settings(max_examples=300, deadline=None)
@given(_small_problems())
def test_exact_path_equals_brute_force_with_deterministic_ties(problem: Problem) -> None:
    table, query, k, exclude, allowed = problem
    index = ItemIndex(table)
    rows, scores = index.search(
        query,
        k,
        exclude=np.array(exclude, np.int64),
        allowed=None if allowed is None else np.array(allowed, np.int64),
    )
    want_rows, want_scores = _brute(table, query, k, exclude, allowed)
    assert rows.dtype == np.int64
    assert scores.dtype == np.float32
    assert rows.tolist() == want_rows
    assert scores.tolist() == want_scores


def _many_problems(n: int, q: int, seed: int) -> tuple[list[int], list, list]:
    """Per query k, exclude and allowed: unfiltered, excluding, filtered, all excluded."""
    rng = np.random.default_rng(seed)
    ks, excludes, alloweds = [], [], []
    for i in range(q):
        ks.append(int(rng.integers(1, 30)))
        excludes.append(rng.integers(0, n + 5, int(rng.integers(0, 50))) if i % 2 else None)
        alloweds.append(rng.choice(n, 40, replace=False) if i % 5 == 4 else None)
    ks[-1], excludes[-1], alloweds[-1] = 5, np.arange(n), None  # nothing eligible
    return ks, excludes, alloweds


def test_search_many_equals_single_searches_on_the_exact_path() -> None:
    table = _random(3_000, 16, seed=1)
    queries = _random(40, 16, seed=2)
    index = ItemIndex(table)
    ks, excludes, alloweds = _many_problems(len(table), len(queries), seed=7)
    answers = index.search_many(queries, ks, excludes, alloweds)
    assert len(answers) == 40 and answers[-1][0].tolist() == []
    for q, k, exclude, allowed, (rows, scores) in zip(
        queries, ks, excludes, alloweds, answers, strict=True
    ):
        one_rows, one_scores = index.search(q, k, exclude, allowed)
        np.testing.assert_array_equal(rows, one_rows)
        np.testing.assert_allclose(scores, one_scores, rtol=1e-6)
        if exclude is None and allowed is None:
            np.testing.assert_array_equal(rows, exact_topk(table, q, k))
    big = index.search_many(queries[:2], [5_000, 5_000], [None, None], [None, None])
    assert [len(rows) for rows, _ in big] == [3_000, 3_000]
    with pytest.raises(ValueError, match="2 queries but 1 k"):
        index.search_many(queries[:2], [5], [None], [None])


def test_exact_topk_is_the_plain_reference() -> None:
    table = _random(500, 8, seed=3)
    query = _random(1, 8, seed=4)[0]
    scores = table @ query
    assert exact_topk(table, query, 7).tolist() == np.argsort(-scores)[:7].tolist()
    assert len(exact_topk(table, query, 10_000)) == 500


@pytest.fixture(scope="module")
def ann() -> tuple[ItemIndex, np.ndarray]:
    table = _random(20_000, 32, seed=5)
    return ItemIndex(table, exact_threshold=1_000), table


def test_usearch_path_recall_at_10_and_exact_scores(ann: tuple[ItemIndex, np.ndarray]) -> None:
    index, table = ann
    queries = _random(200, 32, seed=6)
    hits = 0
    for q in queries:
        rows, scores = index.search(q, 10)
        assert len(rows) == 10
        np.testing.assert_allclose(scores, table[rows] @ q, rtol=1e-5, atol=1e-5)
        assert np.all(np.diff(scores) <= 0)
        hits += len(set(rows.tolist()) & set(exact_topk(table, q, 10).tolist()))
    assert hits / (10 * len(queries)) >= 0.95

    ks, excludes, alloweds = _many_problems(len(table), len(queries), seed=8)
    answers = index.search_many(queries, ks, excludes, alloweds)
    hits = wanted = 0
    for q, k, exclude, allowed, (rows, scores) in zip(
        queries, ks, excludes, alloweds, answers, strict=True
    ):
        one_rows, _ = index.search(q, k, exclude, allowed)
        assert len(rows) == len(one_rows)
        assert not set(rows.tolist()) & set([] if exclude is None else exclude.tolist())
        if allowed is not None:
            assert set(rows.tolist()) <= set(allowed.tolist())
        np.testing.assert_allclose(scores, table[rows] @ q, rtol=1e-5, atol=1e-5)
        assert np.all(np.diff(scores) <= 0)
        if exclude is None and allowed is None:
            hits += len(set(rows.tolist()) & set(exact_topk(table, q, k).tolist()))
            wanted += k
    assert hits / wanted >= 0.95


def test_usearch_path_honours_exclude_and_allowed(ann: tuple[ItemIndex, np.ndarray]) -> None:
    index, table = ann
    q = _random(1, 32, seed=7)[0]
    best = exact_topk(table, q, 50)
    rows, _ = index.search(q, 10, exclude=best)  # the whole exact top 50 is excluded
    assert len(rows) == 10
    assert not set(rows.tolist()) & set(best.tolist())

    big = np.arange(0, 20_000, 2)  # 10k allowed rows: still the usearch path
    rows, scores = index.search(q, 10, exclude=best, allowed=big)
    assert len(rows) == 10
    assert set(rows.tolist()) <= set(big.tolist()) - set(best.tolist())
    np.testing.assert_allclose(scores, table[rows] @ q, rtol=1e-5, atol=1e-5)

    small = np.arange(7, 20_000, 97)  # a small allowed set is searched exactly
    rows, scores = index.search(q, 10, exclude=best, allowed=small)
    want_rows, _ = _brute(table, q, 10, best.tolist(), small.tolist())
    assert rows.tolist() == want_rows


@pytest.mark.parametrize("threshold", [10_000, 100], ids=["exact", "usearch"])
def test_upserts_are_visible_to_the_next_search(threshold: int) -> None:
    table = _random(1_000, 8, seed=8)
    index = ItemIndex(table, exact_threshold=threshold)
    q = np.ones(8, np.float32)
    top = index.search(q, 1)[0][0]

    index.upsert(np.array([top, 5]), np.stack([-q, 10 * q]))  # demote the best, promote row 5
    rows, scores = index.search(q, 3)
    assert rows[0] == 5
    assert scores[0] == pytest.approx(80.0)
    assert top not in index.search(q, 50)[0]

    index.upsert(np.array([1_001, 1_000, 7]), np.stack([20 * q, 30 * q, 15 * q]))  # append two
    assert index.size == 1_002
    assert index.search(q, 4)[0].tolist() == [1_000, 1_001, 7, 5]
    assert index.search(q, 3, exclude=np.array([1_000]))[0].tolist() == [1_001, 7, 5]
    np.testing.assert_array_equal(index.vectors()[1_001], 20 * q)
    assert index.search_many(q[None], [2], [None], [None])[0][0].tolist() == [1_000, 1_001]


def test_appends_across_the_threshold_switch_to_usearch() -> None:
    table = _random(50, 4, seed=9)
    index = ItemIndex(table, exact_threshold=60)
    assert index._ann is None
    extra = _random(20, 4, seed=10)
    index.upsert(np.arange(50, 70), extra)
    assert index._ann is not None
    full = np.concatenate([table, extra])
    q = _random(1, 4, seed=11)[0]
    assert index.search(q, 5)[0].tolist() == exact_topk(full, q, 5).tolist()


def test_an_index_restored_from_bytes_serves_as_the_built_one_and_takes_upserts() -> None:
    table = _random(4_000, 16, seed=12)
    built = build_index(table)
    restored = restore_index(index_bytes(built), len(table), 16)
    served = ItemIndex(table, exact_threshold=1_000, ann=built)
    loaded = ItemIndex(table, exact_threshold=1_000, ann=restored)
    queries = _random(100, 16, seed=13)

    def same_answers(size: int) -> None:
        assert served.size == loaded.size == size
        for q in queries:
            a, b = served.search(q, 10), loaded.search(q, 10)
            assert a[0].tolist() == b[0].tolist()
            np.testing.assert_array_equal(a[1], b[1])
        none = [None] * len(queries)
        many = zip(
            served.search_many(queries, [10] * len(queries), none, none),
            loaded.search_many(queries, [10] * len(queries), none, none),
            strict=True,
        )
        assert all(a[0].tolist() == b[0].tolist() for a, b in many)

    same_answers(4_000)
    # the restored index is a copy that takes upserts: a changed row and two appended ones
    q = queries[0]
    rows, vectors = np.array([3, 4_000, 4_001]), np.stack([5 * q, 6 * q, 7 * q])
    for index in (served, loaded):
        index.upsert(rows, vectors)
        assert index.search(q, 3)[0].tolist() == [4_001, 4_000, 3]
    same_answers(4_002)
    assert len(restored) == 4_002


def test_an_index_that_does_not_fit_the_table_is_refused() -> None:
    table = _random(1_500, 8, seed=14)
    with pytest.raises(ValueError, match="ann holds 1500 rows of 8, the table 1499 of 8"):
        ItemIndex(table[:-1], exact_threshold=1_000, ann=build_index(table))
    small = ItemIndex(table, exact_threshold=2_000, ann=build_index(table))
    assert small._ann is None  # below the threshold: exact search, as without one


def test_vectors_is_a_read_only_snapshot() -> None:
    index = ItemIndex(_random(10, 3, seed=12))
    before = index.vectors()
    with pytest.raises(ValueError):
        before[0, 0] = 1.0
    index.upsert(np.array([0]), np.zeros((1, 3), np.float32))
    assert before[0, 0] != 0.0
    assert index.vectors()[0, 0] == 0.0
    assert index.dim == 3


def test_the_table_is_copied_unless_taken_over() -> None:
    given = _random(10, 3, seed=13)
    copied = ItemIndex(given)
    given[0, 0] = 5.0  # the caller's array stays its own
    assert copied.vectors()[0, 0] != 5.0
    taken = ItemIndex(given, copy=False)
    assert np.shares_memory(taken.vectors(), given)
    with pytest.raises(ValueError):  # read-only from then on, the caller's reference too
        given[0, 0] = 1.0
    taken.upsert(np.array([0]), np.zeros((1, 3), np.float32))  # copy-on-write, as ever
    assert given[0, 0] == 5.0 and taken.vectors()[0, 0] == 0.0


@pytest.mark.parametrize("threshold", [100_000, 500], ids=["exact", "usearch"])
def test_concurrent_searches_during_upserts(threshold: int) -> None:
    n0, d = 2_000, 8
    original = _random(n0, d, seed=13)
    index = ItemIndex(original, exact_threshold=threshold)
    stop = threading.Event()
    errors: list[BaseException] = []

    def searcher(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                q = rng.standard_normal(d).astype(np.float32)
                exclude = rng.integers(0, n0, 20)
                rows, scores = index.search(q, 10, exclude=exclude)
                size = index.size
                assert len(rows) == 10
                assert ((rows >= 0) & (rows < size)).all()
                assert len(set(rows.tolist())) == 10
                assert not set(rows.tolist()) & set(exclude.tolist())
                assert np.isfinite(scores).all() and (np.diff(scores) <= 0).all()
                ((batch_rows, _),) = index.search_many(q[None], [5], [exclude], [None])
                assert ((batch_rows >= 0) & (batch_rows < index.size)).all()
                snapshot = index.vectors()  # every row whole: original, or one upsert's value
                uniform = (snapshot == snapshot[:, :1]).all(axis=1)
                assert (uniform[n0:]).all()
                assert (uniform[:n0] | (snapshot[:n0] == original).all(axis=1)).all()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=searcher, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    rng = np.random.default_rng(14)
    try:
        for _ in range(40):
            size = index.size
            changed = rng.choice(size, 30, replace=False)
            rows = np.concatenate([changed, np.arange(size, size + 10)])
            values = rng.standard_normal(len(rows)).astype(np.float32)
            index.upsert(rows, np.repeat(values[:, None], d, axis=1))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert index.size == n0 + 400


def test_bad_inputs_raise_value_errors() -> None:
    table = _random(20, 4, seed=15)
    index = ItemIndex(table)
    q = table[0]
    bad_calls = [
        lambda: ItemIndex(table.astype(np.float64)),
        lambda: ItemIndex(table[0]),
        lambda: ItemIndex(np.full((3, 4), np.nan, np.float32)),
        lambda: ItemIndex(np.zeros((3, 0), np.float32)),
        lambda: ItemIndex(table, exact_threshold=-1),
        lambda: index.search(q.astype(np.float64), 3),
        lambda: index.search(q[:3], 3),
        lambda: index.search(np.array([1, np.inf, 0, 0], np.float32), 3),
        lambda: index.search(q, 0),
        lambda: index.search(q, 2.5),  # type: ignore[arg-type]
        lambda: index.search(q, 3, exclude=np.array([0.5])),
        lambda: index.search(q, 3, exclude=np.array([-1])),
        lambda: index.search(q, 3, allowed=np.array([[1, 2]])),
        lambda: index.search_many(table[:1, :3], [3], [None], [None]),
        lambda: index.search_many(table[:1], [0], [None], [None]),
        lambda: index.upsert(np.array([21]), table[:1]),  # skips row 20
        lambda: index.upsert(np.array([20, 20]), table[:2]),
        lambda: index.upsert(np.array([1, 2]), table[:1]),
        lambda: index.upsert(np.array([1.0]), table[:1]),
        lambda: index.upsert(np.array([1]), table[:1, :3]),
        lambda: index.upsert(np.array([1]), np.full((1, 4), np.inf, np.float32)),
        lambda: exact_topk(table, q, 0),
    ]
    for call in bad_calls:
        with pytest.raises(ValueError):
            call()
    assert index.size == 20
    np.testing.assert_array_equal(index.vectors(), table)


def test_empty_table_returns_nothing() -> None:
    index = ItemIndex(np.zeros((0, 4), np.float32))
    rows, scores = index.search(np.ones(4, np.float32), 5)
    assert rows.shape == scores.shape == (0,)
    answers = index.search_many(np.ones((2, 4), np.float32), [5, 5], [None, None], [None, None])
    assert [rows.shape for rows, _ in answers] == [(0,), (0,)]
    index.upsert(np.array([0]), np.ones((1, 4), np.float32))
    assert index.search(np.ones(4, np.float32), 5)[0].tolist() == [0]
