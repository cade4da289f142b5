"""Who may call the service: bearer tokens (compared in constant time) and TLS."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.server import ServerConfig
from tests.serving.conftest import World, close, serve


def test_token_auth(world: World) -> None:
    served = serve(world, ServerConfig(address="127.0.0.1:0", token="s3cret"))
    request = pb.RecommendRequest(subject=pb.Subject(user_id="nobody"), k=3)
    try:
        with pytest.raises(grpc.RpcError) as failure:
            served.stub.Recommend(request)
        assert failure.value.code() is grpc.StatusCode.UNAUTHENTICATED
        for wrong in ("Bearer nope", "Bearer s3cre", "Bearer s3cret2", "s3cret", "bearer s3cret"):
            with pytest.raises(grpc.RpcError) as failure:
                served.stub.Recommend(request, metadata=(("authorization", wrong),))
            assert failure.value.code() is grpc.StatusCode.UNAUTHENTICATED, wrong
        ok = served.stub.Recommend(request, metadata=(("authorization", "Bearer s3cret"),))
        assert len(ok.items) == 3
    finally:
        close(served)


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail("CI=true but the openssl command is missing: the TLS test cannot run")
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_calls_succeed_and_plaintext_ones_fail(world: World, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    served = serve(world, ServerConfig(address="127.0.0.1:0", tls_cert=cert, tls_key=key))
    address = f"127.0.0.1:{served.serving.server.port}"
    request = pb.RecommendRequest(subject=pb.Subject(user_id="nobody"), k=2)
    try:
        credentials = grpc.ssl_channel_credentials(cert.read_bytes())
        with grpc.secure_channel(address, credentials) as channel:
            assert len(pb_grpc.RecommenderStub(channel).Recommend(request, timeout=10).items) == 2
        with grpc.insecure_channel(address) as plain:
            with pytest.raises(grpc.RpcError) as failure:
                pb_grpc.RecommenderStub(plain).Recommend(request, timeout=10)
            assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        close(served)
