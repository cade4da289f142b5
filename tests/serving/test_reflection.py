"""Reflection, tried from outside with grpcurl and ghz (no .proto files given to either)."""

from __future__ import annotations

import json
import subprocess

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from tests.serving.conftest import Served, World
from tests.serving.outside import outside_client
from tests.serving.test_service import user_with_most_items


def run_grpcurl(
    served: Served, *args: str, flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``grpcurl -plaintext <flags> <server> <args>``, no .proto given: reflection only."""
    address = f"127.0.0.1:{served.serving.server.port}"
    command = [outside_client("grpcurl"), "-plaintext", *flags, address, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def grpcurl(served: Served, *args: str, flags: tuple[str, ...] = ()) -> str:
    run = run_grpcurl(served, *args, flags=flags)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_grpcurl_lists_both_reflection_versions(served: Served) -> None:
    names = set(grpcurl(served, "list").split())
    assert {
        "graphrec.v1.Recommender",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("graphrec.v1.Recommender", "rpc Recommend ( .graphrec.v1.RecommendRequest )"),
        ("graphrec.v1.Recommender.Recommend", "rpc Recommend ( .graphrec.v1.RecommendRequest )"),
        ("graphrec.v1.Recommender.Explain", "rpc Explain ( .graphrec.v1.ExplainRequest )"),
        ("graphrec.v1.RecommendRequest", "message RecommendRequest {"),
        ("grpc.reflection.v1.ServerReflection", "rpc ServerReflectionInfo"),
    ],
)
def test_grpcurl_describes_services_methods_and_messages(
    served: Served, symbol: str, expected: str
) -> None:
    assert expected in grpcurl(served, "describe", symbol)


def test_grpcurl_unknown_method_is_not_found(served: Served) -> None:
    run = run_grpcurl(served, "describe", "graphrec.v1.Recommender.Nope")
    assert run.returncode != 0
    assert "Symbol not found" in run.stderr


def test_grpcurl_calls_recommend_through_reflection(served: Served, world: World) -> None:
    request = json.dumps({"subject": {"user_id": user_with_most_items(world)}, "k": 3})
    answer = json.loads(grpcurl(served, "graphrec.v1.Recommender/Recommend", flags=("-d", request)))
    assert len(answer["items"]) == 3
    assert answer.keys() >= {"items", "model_version"}, answer


def test_ghz_runs_without_proto(served: Served, world: World) -> None:
    port = served.serving.server.port
    request = json.dumps({"subject": {"user_id": user_with_most_items(world)}, "k": 3})
    run = subprocess.run(
        [
            outside_client("ghz"),
            "--insecure",
            "--call",
            "graphrec.v1.Recommender/Recommend",
            "-d",
            request,
            "-n",
            "20",
            "-c",
            "2",
            "--format",
            "json",
            f"127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["statusCodeDistribution"] == {"OK": 20}, report.get("errorDistribution")


def test_v1_reflection_answers_under_its_own_name(served: Served) -> None:
    """The v1 service (what grpcurl ≥ 1.8 asks first) answers a method lookup by itself."""
    pool = descriptor_pool.Default()
    request_type, response_type = (
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"grpc.reflection.v1.{n}"))
        for n in ("ServerReflectionRequest", "ServerReflectionResponse")
    )
    call = served.channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString,
    )
    symbol = "graphrec.v1.Recommender.Recommend"
    (answer,) = call(iter([request_type(file_containing_symbol=symbol)]), timeout=10)
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in answer.file_descriptor_response.file_descriptor_proto
    ]
    assert any(s.name == "Recommender" for f in files for s in f.service), answer
