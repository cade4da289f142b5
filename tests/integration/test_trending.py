"""The faust trending app against the real broker: windowed counts per item and category."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter

import pytest

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import produce_dataset
from serving.trending import http_trending
from tests.integration.servers import Servers

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_trending_counts_match_what_was_produced(servers: Servers, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = uuid.uuid4().hex[:8]
    url = f"kafka://{servers.kafka}/tr-events-{run}?items=tr-items-{run}"
    data = generate(SyntheticConfig(seed=31, events=3_000, items=300))
    produce_dataset(url, data)
    port = free_port()
    app = subprocess.Popen(
        [
            *(sys.executable, "-m", "graphrec", "trending", "--from", url),
            *("--app-id", f"tr-{run}", "--web-port", str(port)),
        ],
        cwd=tmp_path,
    )
    expected = Counter(i.item_id for i in data.interactions).most_common(10)
    leaf = {i.item_id: "/".join(i.category_path) for i in data.items}
    try:
        got: list = []  # type: ignore[type-arg]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                got = get_json(f"http://127.0.0.1:{port}/trending/items/?k=10")["items"]
            except OSError:
                got = []
            if sum(c for _, c in got) >= sum(c for _, c in expected):
                break
            time.sleep(1.0)
        assert [tuple(x) for x in got] == sorted(expected, key=lambda kv: (-kv[1], kv[0]))
        top_category = leaf[expected[0][0]]
        in_category = get_json(
            f"http://127.0.0.1:{port}/trending/items/?k=3&category={top_category}"
        )["items"]
        assert in_category and all(leaf[item] == top_category for item, _ in in_category)
        # what the recommender's popularity fallback reads (graphrec serve --trending URL)
        popular = http_trending(f"http://127.0.0.1:{port}")
        assert popular(10, "") == [(item, float(c)) for item, c in got]
        assert popular(3, top_category) == [(item, float(c)) for item, c in in_category]
        categories = get_json(f"http://127.0.0.1:{port}/trending/categories/?k=50")["categories"]
        by_leaf = Counter(leaf[i.item_id] for i in data.interactions)
        assert dict(map(tuple, categories)) == dict(by_leaf)
    finally:
        app.terminate()
        app.wait(timeout=30)
