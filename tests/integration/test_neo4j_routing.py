"""The store through Neo4j's routing driver (a ``neo4j://`` URL), against the single local
instance: serving's and the trainer's reads run as read transactions only (what a cluster
sends to followers and read replicas), and writes as write transactions. A cluster itself is
not tested here (see deploy/README.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import neo4j as driver
import pytest

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import produce_dataset
from graphstore import GraphStore, NodeKind, NodeRef
from graphstore.neo4j import Neo4jGraphStore
from serving.explain import actors_of
from serving.refresh import items_from_graph
from serving.storehealth import bounded
from tests.integration.servers import Servers

pytestmark = pytest.mark.integration


class _RecordingSession:
    """A driver session that notes how each unit of work was run, then runs it: an
    auto-commit statement of a read session counts as a read (a cluster routes it to a
    reader)."""

    def __init__(self, session: driver.Session, calls: list[str], mode: str | None) -> None:
        self._session, self._calls, self._mode = session, calls, mode

    def __enter__(self) -> _RecordingSession:
        self._session.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._session.__exit__(*exc)  # type: ignore[arg-type]

    def execute_read(self, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._calls.append("read")
        return self._session.execute_read(work, *args, **kwargs)

    def execute_write(self, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._calls.append("write")
        return self._session.execute_write(work, *args, **kwargs)

    def run(self, *args: Any, **kwargs: Any) -> driver.Result:
        self._calls.append("read" if self._mode == driver.READ_ACCESS else "auto-commit")
        return self._session.run(*args, **kwargs)

    def begin_transaction(self, *args: Any, **kwargs: Any) -> driver.Transaction:
        self._calls.append("explicit")
        return self._session.begin_transaction(*args, **kwargs)


class RecordingDriver:
    """The store's driver, its sessions recording (``calls``) how they were used."""

    def __init__(self, wrapped: driver.Driver) -> None:
        self.driver = wrapped
        self.calls: list[str] = []

    def session(self, **options: Any) -> _RecordingSession:
        mode = options.get("default_access_mode")
        return _RecordingSession(self.driver.session(**options), self.calls, mode)

    def close(self) -> None:
        self.driver.close()


@pytest.fixture
def routed(servers: Servers, neo4j: GraphStore, tmp_path: Any) -> Iterator[Neo4jGraphStore]:
    """A store opened on the ``neo4j://`` URL over a small graph, its driver recording."""
    assert servers.neo4j.startswith("neo4j://")
    from graphrec.pipeline import ingest

    data = generate(SyntheticConfig(seed=51, events=2_000, users=100, items=300))
    log = f"log://{tmp_path / 'log'}"
    produce_dataset(log, data)
    ingest(log, neo4j, group="routing", idle_exit_s=0.3)
    store = Neo4jGraphStore.from_url(servers.neo4j)
    assert isinstance(store._driver, driver.Neo4jDriver), "neo4j:// opens the routing driver"
    recording = RecordingDriver(store._driver)
    store._driver = recording  # type: ignore[assignment]
    try:
        yield store
    finally:
        store.close()


def test_serving_and_training_reads_are_read_transactions(routed: Neo4jGraphStore) -> None:
    calls: list[str] = routed._driver.calls  # type: ignore[attr-defined]
    marks = routed.watermarks()  # the change feed's starting point
    snapshot = routed.snapshot()  # what the trainer and its sampler read
    assert routed.stats().interactions == 2_000  # the trainer's schedule
    user = NodeRef(NodeKind.USER, snapshot.keys[NodeKind.USER][0])
    item = snapshot.keys[NodeKind.ITEM][0]
    hood = bounded(routed, 5.0).neighbourhood([user], [10, 5])  # Recommend's fetch
    assert hood.found[0]
    assert actors_of(routed, item, 20)  # Explain
    assert items_from_graph(routed, [item])  # the change feed's catalogue lookup
    assert marks and calls and set(calls) == {"read"}, calls


def test_a_batch_is_a_write_transaction(routed: Neo4jGraphStore) -> None:
    calls: list[str] = routed._driver.calls  # type: ignore[attr-defined]
    data = generate(SyntheticConfig(seed=52, events=50, users=5, items=20))
    routed.add_interactions(data.interactions)
    assert calls == ["write"]


def test_a_read_transaction_here_refuses_writes(routed: Neo4jGraphStore) -> None:
    """The single instance enforces the access mode: a read transaction is one a follower
    could serve, which is what the test above counts on."""

    def create(tx: driver.ManagedTransaction) -> None:
        tx.run("CREATE (:RoutingProbe)").consume()

    with routed._session() as session, pytest.raises(driver.exceptions.ClientError) as refused:
        session.execute_read(create)
    assert "read" in str(refused.value).lower()
    read_session = routed.bounded(5.0)._session()
    with read_session as session, pytest.raises(driver.exceptions.ClientError) as refused:
        session.run("CREATE (:RoutingProbe)").consume()  # how a bounded neighbourhood reads
    assert "read" in str(refused.value).lower()


def test_a_deadlock_between_two_writers_is_retried_by_execute_write(
    routed: Neo4jGraphStore,
) -> None:
    """Two writers lock two nodes in opposite orders: Neo4j aborts one with a deadlock, a
    transient error, and ``execute_write`` runs it again; both finish."""
    with routed._session() as session:
        session.run("UNWIND ['a', 'b'] AS k MERGE (:DeadlockProbe {k: k})").consume()
    both_hold_one = threading.Barrier(2, timeout=10)
    attempts: list[str] = []
    errors: list[BaseException] = []

    def lock(first: str, second: str) -> None:
        def work(tx: driver.ManagedTransaction) -> None:
            attempts.append(first)
            tx.run("MATCH (n:DeadlockProbe {k: $k}) SET n.v = 1", k=first).consume()
            if len(attempts) <= 2:
                both_hold_one.wait()
            tx.run("MATCH (n:DeadlockProbe {k: $k}) SET n.v = 1", k=second).consume()

        try:
            with routed._session() as session:
                session.execute_write(work)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lock, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(attempts) == 3, attempts  # one of the two ran again after the deadlock
