"""Model versions on disk, hot-reloaded: ``<models>/current`` names the version to serve.

A new version is loaded completely (weights, item table) on the watcher thread while the old
one keeps serving; then one reference is swapped, so no request ever sees half a model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from gnn.checkpoint import current_version
from gnn.manifest import VersionError

log = logging.getLogger(__name__)
E = TypeVar("E")


class ModelRegistry(Generic[E]):
    """Holds the loaded version; ``check()`` (or the watcher thread) swaps in new ones."""

    def __init__(
        self,
        models_dir: Path,
        load: Callable[[Path], E],
        poll_s: float = 1.0,
        on_swap: Callable[[str, E], None] | None = None,
    ) -> None:
        self.models_dir = models_dir
        self.poll_s = poll_s
        self._load = load
        self._on_swap = on_swap
        self._current: E | None = None
        self._version: str | None = None
        self._failed: str | None = None  # a version that would not load: not retried
        self._refused: str | None = None  # why the last pointer was refused (logged once)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loading = threading.Event()

    def current(self) -> E | None:
        return self._current

    @property
    def version(self) -> str | None:
        return self._version

    def check(self) -> bool:
        """Load and swap in the version ``current`` names if it is new; True if swapped."""
        try:
            version = current_version(self.models_dir)
        except ValueError as exc:  # a pointer out of the models directory: never followed
            if str(exc) != self._refused:
                log.error("%s; keeping %s", exc, self._version)
                self._refused = str(exc)
            return False
        if version is None or version in (self._version, self._failed):
            return False
        self.loading.set()
        try:
            engine = self._load(self.models_dir / version)
        except VersionError as exc:  # damaged, partial or foreign: the message says which file
            log.error("refused model version %s (%s); keeping %s", version, exc, self._version)
            self._failed = version
            return False
        except Exception:
            log.exception("model version %s failed to load; keeping %s", version, self._version)
            self._failed = version
            return False
        finally:
            self.loading.clear()
        self._current, self._version = engine, version
        log.info("serving model version %s", version)
        if self._on_swap is not None:
            self._on_swap(version, engine)
        return True

    def start(self) -> None:
        """Watch for new versions every ``poll_s`` seconds on a daemon thread."""
        self._thread = threading.Thread(target=self._watch, name="model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
            except Exception:  # a bad pointer file must not kill the watcher
                log.exception("model watcher")
