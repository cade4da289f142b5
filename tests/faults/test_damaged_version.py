"""A damaged model version under a running server (issue 22's fault suite, issue 18's
contract): a truncated file or a changed byte in a version that ``current`` points at (its
weights, or its usearch index) is refused with a message naming the version and the file, and
the server keeps answering from the version it has, SERVING, without a failed request."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gnn.ann import build_index
from gnn.checkpoint import set_current, write_version
from gnn.version import load_version
from graphstore import NodeKind
from protos import graphrec_pb2 as pb
from tests.serving.conftest import World, close, serve


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def copy_of(models: Path, version: str, name: str, file: str) -> None:
    """``version`` again as ``name``; with its usearch index for ``items.usearch`` (the small
    world's versions have none of their own)."""
    if file == "items.usearch":
        loaded = load_version(models / version)
        ann = build_index(loaded.items.embeddings)
        write_version(models, replace(loaded, name=name, ann=ann))
    else:
        shutil.copytree(models / version, models / name)


@pytest.mark.parametrize(
    ("file", "damage"),
    [
        ("model.safetensors", truncate),
        ("model.safetensors", flip_a_byte),
        ("items.usearch", truncate),
        ("items.usearch", flip_a_byte),
    ],
    ids=["truncated", "changed-byte", "index-truncated", "index-changed-byte"],
)
def test_a_damaged_version_is_refused_and_the_old_one_keeps_serving(
    world: World,
    tmp_path: Path,
    file: str,
    damage: Callable[[Path], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    models = tmp_path / "models"
    shutil.copytree(world.models, models)
    served = serve(world, models=models)
    try:
        first = served.serving.registry.version
        assert first is not None
        user = next(
            i.actor.key for i in world.dataset.interactions if i.actor.kind is NodeKind.USER
        )
        request = pb.RecommendRequest(subject=pb.Subject(user_id=user), k=10)
        before = served.stub.Recommend(request, timeout=10)
        assert before.model_version == first

        damaged = f"{first}-damaged"
        copy_of(models, first, damaged, file)
        damage(models / damaged / file)
        with caplog.at_level(logging.WARNING):
            set_current(models, damaged)
            _wait_for(
                lambda: any(damaged in r.getMessage() for r in caplog.records), 10, "the refusal"
            )
            for _ in range(20):
                answer = served.stub.Recommend(request, timeout=10)
                assert answer.model_version == first
                assert [i.item_id for i in answer.items] == [i.item_id for i in before.items]
        refusal = next(r.getMessage() for r in caplog.records if damaged in r.getMessage())
        assert file in refusal, refusal
        assert served.serving.registry.version == first
        health = health_pb2_grpc.HealthStub(served.channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        close(served)
