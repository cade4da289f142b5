"""``serve --ab``: a stable hash split of subjects (the same arm in every process, FRACTION of
them in arm b), each answer named by the version that gave it and logged with its arm."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from graphstore import NodeKind
from protos import graphrec_pb2 as pb
from serving.abtest import ABSplit
from serving.pinned import with_ab
from serving.types import SubjectKind
from tests.integration.waiting import wait_until
from tests.serving.conftest import World
from tests.serving.test_shadow import OTHER, running

USER = NodeKind.USER
SUBJECTS = [f"user-{i}" for i in range(10_000)]


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.5, 0.9])
def test_the_split_sends_fraction_of_subjects_to_b(fraction: float) -> None:
    split = ABSplit("v2", fraction)
    share = sum(split.arm(SubjectKind.USER, s) == "b" for s in SUBJECTS) / len(SUBJECTS)
    assert share == pytest.approx(fraction, abs=0.02)


def test_the_split_is_the_same_in_every_process_and_nests() -> None:
    code = (
        "import json, sys; from serving.abtest import ABSplit; from serving.types import "
        "SubjectKind; s = ABSplit('v2', 0.3); "
        "print(json.dumps([s.arm(SubjectKind.SESSION, k) for k in sys.argv[1:]]))"
    )
    keys = SUBJECTS[:200]
    arms = []
    for seed in ("1", "2"):  # str hashes differ between these processes; the split does not
        env = {**os.environ, "PYTHONHASHSEED": seed}
        shown = subprocess.run(
            [sys.executable, "-c", code, *keys], env=env, capture_output=True, check=True
        )
        arms.append(json.loads(shown.stdout))
    here = [ABSplit("other", 0.3).arm(SubjectKind.SESSION, k) for k in keys]
    assert arms[0] == arms[1] == here
    assert {"b", "primary"} == set(here)
    # a larger share keeps every subject of a smaller one in arm b
    wider = ABSplit("v2", 0.6)
    in_b = [k for k, arm in zip(keys, here, strict=True) if arm == "b"]
    assert all(wider.arm(SubjectKind.SESSION, k) == "b" for k in in_b)
    # a user and a session of the same id are different subjects
    users = [ABSplit("v2", 0.3).arm(SubjectKind.USER, k) for k in keys]
    assert users != here


def test_subjects_without_a_stable_id_stay_on_the_served_version() -> None:
    split = ABSplit("v2", 0.99)
    assert split.arm(SubjectKind.SESSION, "") == "primary"
    assert split.arm(SubjectKind.ITEM, "i1") == "primary"
    session = pb.RecommendRequest(subject=pb.Subject(session=pb.SessionContext()))
    assert split.arm_of_request(session.SerializeToString()) == "primary"
    assert split.arm_of_request(b"\xff not a request") == "primary"


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_a_fraction_outside_0_1_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        ABSplit("v2", fraction)


def test_every_answer_names_the_version_of_its_arm(world: World, tmp_path: Path) -> None:
    users = sorted({i.actor.key for i in world.dataset.interactions if i.actor.kind is USER})[:40]
    with running(world, tmp_path) as service:
        with_ab(service.serving, service.other, 0.5)
        stub = service.start()
        split = service.serving.server.servicer.split
        assert split is not None
        answers = {}
        for user in users:
            request = pb.RecommendRequest(subject=pb.Subject(user_id=user), k=5)
            response, call = stub.Recommend.with_call(request, timeout=5.0)
            answers[user] = (response, dict(call.trailing_metadata())["x-request-id"])
            scores = stub.ScoreItems(
                pb.ScoreItemsRequest(subject=pb.Subject(user_id=user), item_ids=["i0", "i1"])
            )
            assert scores.model_version == response.model_version
        wait_until(
            "every answer logged",
            lambda: service.metric("graphrec_recommendation_log_records_total") == len(users),
            15,
        )
        served = service.serving.registry.version
        logged = {r.request_id: r for r in service.records()}
    in_b = {u for u in users if split.arm(SubjectKind.USER, u) == "b"}
    assert 0 < len(in_b) < len(users)
    for user, (response, rid) in answers.items():
        expected = (OTHER, "b") if user in in_b else (served, "primary")
        assert (response.model_version, logged[rid].arm) == expected, user
        assert logged[rid].model_version == response.model_version


def test_the_other_version_follows_the_change_stream(world: World, tmp_path: Path) -> None:
    from dataclasses import replace

    from graphrec.pinned import Pinned
    from graphstore import ItemRecord
    from tests.serving.test_operations import publish

    shutil.copytree(world.root, tmp_path / "world")
    root = tmp_path / "world"
    own = replace(world, root=root, log_url=f"log://{root / 'log'}", models=root / "models")
    own = replace(own, store_url=f"sqlite://{root / 'graph'}")
    with running(own, tmp_path / "run") as service:
        pinned = Pinned(ab=(service.other, 0.5))
        pinned.attach(service.serving)
        service.start()
        pinned.start(service.serving, service.store, own.log_url)
        try:
            template = own.dataset.items[5]
            publish(own, items=[ItemRecord("brand-new", template.category_path, "new serum")])
            table = service.other.table
            wait_until(
                "the other version's table holds the new item",
                lambda: "brand-new" in table.index and table.index["brand-new"] < table.size,
                15,
            )
            up = service.metric("graphrec_background_up", loop="change-feed-b")
            assert up == 1
        finally:
            pinned.stop()
