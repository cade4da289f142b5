"""The docs name only files that exist: every ``dir/file.ext`` path in docs/architecture.md and
README.md is a file of the repository (paths are relative to its root)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["docs/architecture.md", "README.md"]
# A path with at least one directory and a file extension, e.g. serving/fetch.py.
PATH = re.compile(r"(?<![\w./<:-])(?:[\w-]+/)+[\w-]+\.(?:py|sh|md|proto|toml)\b")


def paths_in(text: str) -> list[str]:
    """The repository paths a document names, in order of appearance, each once."""
    return list(dict.fromkeys(PATH.findall(text)))


def test_the_pattern_finds_paths_and_skips_what_is_not_one() -> None:
    text = (
        "`serving/fetch.py` and gnn/csr.py, (deploy/outside-clients.sh); "
        "models/<version>/meta.json, graphrec.toml, http://127.0.0.1:7474/browser/x.py"
    )
    assert paths_in(text) == ["serving/fetch.py", "gnn/csr.py", "deploy/outside-clients.sh"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_a_doc_names_exists(doc: str) -> None:
    named = paths_in((ROOT / doc).read_text())
    assert named, f"{doc} names no paths: has the pattern stopped matching?"
    missing = [p for p in named if not (ROOT / p).is_file()]
    assert not missing, f"{doc} names files that do not exist: {missing}"
