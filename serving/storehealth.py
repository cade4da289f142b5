"""Whether the graph store answers: bounded store calls on the request path, and a probe.

Requests read the store through a bounded view (``bounded``): an unreachable or slow store
costs a request at most the bound, and the request is answered from what does not need the
store (see ``Recommender.recommend_many``). A background ``StoreProbe`` asks the store a
one-seed question every period; while it fails, requests skip the store altogether and gRPC
health says NOT_SERVING; the first answer turns both back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as CallTimeout
from typing import Any, cast

from graphstore import GraphStore, GraphStoreError, InvalidInput, NodeKind, NodeRef

log = logging.getLogger(__name__)
PROBE_NODE = NodeRef(NodeKind.ITEM, "graphrec-store-probe")
PROBE_TIMEOUT_S = 5.0  # more than a request's bound: the first query after a store restart
# compiles its plan (seen taking over a second), and the probe's query warms that plan


def bounded(store: GraphStore, timeout_s: float) -> GraphStore:
    """The store's view whose calls give up after about ``timeout_s``.

    A store's own bound (``Neo4jGraphStore.bounded``: one attempt, connection and
    transaction timeouts) ends calls to a server that is down; it cannot end a read from a
    server that answers slowly, so every call also runs on a small pool and the caller stops
    waiting at the bound (``GraphStoreError``) while the abandoned call finishes there."""
    view = getattr(store, "bounded", None)
    return cast(GraphStore, _Deadline(view(timeout_s) if callable(view) else store, timeout_s))


class _Deadline:
    """Forwards attribute access to ``store``; its methods return within ``timeout_s``."""

    _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="store-call")

    def __init__(self, store: GraphStore, timeout_s: float) -> None:
        self._store, self._timeout_s = store, timeout_s

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            future = self._pool.submit(attribute, *args, **kwargs)
            try:
                return future.result(timeout=self._timeout_s)
            except CallTimeout:
                raise GraphStoreError(
                    f"graph store did not answer {name} within {self._timeout_s:g} s"
                ) from None

        return call


def store_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the store could not answer (unreachable, too slow), as
    opposed to a request the store refused (``InvalidInput``) or a bug."""
    if isinstance(exc, InvalidInput):
        return False
    if isinstance(exc, GraphStoreError | OSError | TimeoutError):
        return True
    return type(exc).__name__ in ("ServiceUnavailable", "SessionExpired")  # neo4j driver


class StoreProbe:
    """Asks ``store`` about one node every ``period_s`` (four times as often while it
    fails: a refused connection costs nothing, and recovery is noticed sooner) on a thread
    of its own; ``up`` is whether the last probe answered, and ``on_change(up)`` is called
    when that flips."""

    def __init__(
        self,
        store: GraphStore,
        on_change: Callable[[bool], None],
        period_s: float = 1.0,
        timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self._store = bounded(store, timeout_s)
        self._on_change = on_change
        self.period_s = period_s
        self.up = True  # the store answered when it was opened
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def probe(self) -> bool:
        """Ask the store once; update ``up`` (calling ``on_change`` if it flipped)."""
        try:
            self._store.neighbourhood([PROBE_NODE], [1])
            up = True
        except Exception as exc:
            if not store_unavailable(exc):
                raise
            if self.up:
                log.warning("graph store unavailable: %s", exc)
            up = False
        if up != self.up:
            self.up = up
            if up:
                log.info("graph store answers again")
            self._on_change(up)
        return up

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.period_s + PROBE_TIMEOUT_S + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s if self.up else self.period_s / 4):
            try:
                self.probe()
            except Exception:  # a bug in a probe must not end probing
                log.exception("store probe")
