"""The committed generated code matches protos/graphrec.proto (regenerate: scripts/gen-protos)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATED = ("graphrec_pb2.py", "graphrec_pb2.pyi", "graphrec_pb2_grpc.py")


def test_generated_protos_are_fresh(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([str(REPO / "scripts" / "gen-protos"), str(tmp_path)], check=True, env=env)
    for name in GENERATED:
        fresh = (tmp_path / "protos" / name).read_text()
        committed = (REPO / "protos" / name).read_text()
        assert fresh == committed, f"protos/{name} is stale: run scripts/gen-protos"
