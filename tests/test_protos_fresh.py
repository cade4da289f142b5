"""The committed generated code matches protos/graphrec.proto (regenerate: scripts/gen-protos)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATED = ("graphrec_pb2.py", "graphrec_pb2.pyi", "graphrec_pb2_grpc.py")
# The generators stamp their own versions into the code; a patch release of grpcio-tools
# changes the stamp, not the schema. (The stamps are runtime floors: pyproject.toml keeps
# grpcio and protobuf at or above the committed ones.)
TOOL_STAMPS = re.compile(
    r"GRPC_GENERATED_VERSION = '[^']*'"
    r"|# Protobuf Python Version: \S+"
    r"|(?<=_runtime_version\.Domain\.PUBLIC,)\s*\d+,\s*\d+,\s*\d+,"
)


def _schema(code: str) -> str:
    return TOOL_STAMPS.sub("<tool version>", code)


def test_generated_protos_are_fresh(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([str(REPO / "scripts" / "gen-protos"), str(tmp_path)], check=True, env=env)
    for name in GENERATED:
        fresh = (tmp_path / "protos" / name).read_text()
        committed = (REPO / "protos" / name).read_text()
        assert _schema(fresh) == _schema(committed), (
            f"protos/{name} is stale: run scripts/gen-protos"
        )
