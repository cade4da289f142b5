"""Fixtures shared by the integration tests: Neo4j credentials and headless Chromium."""

from __future__ import annotations

import os

import pytest

from graphstore.neo4j import PASSWORD_ENV, USER_ENV, default_password_file
from tests.integration.chromium import chromium_missing


@pytest.fixture
def chromium() -> None:
    """Skip without chromium/chromedriver/selenium, except under CI=true, where that fails."""
    reason = chromium_missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true but Neo4j Browser tests cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def credentials() -> tuple[str, str]:
    """(user, password) of the local Neo4j, as deploy/services.sh set them."""
    user = os.environ.get(USER_ENV, "neo4j")
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        password = default_password_file().read_text().strip()
    return user, password
