"""Waiting for a condition with a deadline: on timeout the test fails, naming what it awaited."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``condition`` every 0.1 s until it holds; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)
