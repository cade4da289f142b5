"""The outside clients (grpcurl, ghz, kcat) the tests call graphrec with, as users do.

``deploy/outside-clients.sh`` installs them (grpcurl and ghz into the graphrec cache's
``go/bin``). A missing client skips its test with the reason, except under ``CI=true``,
where it fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

GO_BIN = Path(os.environ.get("GRAPHREC_CACHE", Path.home() / ".cache/graphrec")) / "go/bin"


def outside_client(name: str) -> str:
    """The path of client ``name`` (in the cache's go/bin, else on PATH); skip or fail."""
    found = shutil.which(name, path=f"{GO_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found:
        return found
    reason = f"{name} is not installed; run deploy/outside-clients.sh"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)
