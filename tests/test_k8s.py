"""deploy/k8s: the manifests pass kustomize, kubernetes-validate and checkov (and those checks
catch a broken manifest), and what they run and mount is what graphrec reads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.config import load_config
from graphstore import GraphStoreError
from graphstore.neo4j import PASSWORD_FILE_ENV, Neo4jGraphStore

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
ARGS = re.compile(r"^\s+args: \[(.*)\]$", re.M)
COMMAND = re.compile(r"^\s+command: \[(.*)\]$", re.M)


def _check(directory: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("go") is None and os.environ.get("CI", "").lower() not in ("true", "1"):
        pytest.skip("go is needed to install kustomize")
    return subprocess.run(
        [str(K8S / "check.sh"), str(directory)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.mark.slow
def test_the_manifests_pass_kustomize_kubernetes_validate_and_checkov() -> None:
    result = _check(K8S)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout


@pytest.mark.slow
def test_the_check_fails_on_a_manifest_without_limits_or_with_an_unknown_field(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "k8s"
    shutil.copytree(K8S, broken)
    serve = broken / "base" / "serve.yaml"
    text = serve.read_text()
    limits = '            limits:\n              cpu: "2"\n              memory: 4Gi\n'
    assert limits in text
    serve.write_text(text.replace(limits, ""))
    sink = broken / "base" / "sink.yaml"
    sink.write_text(
        sink.read_text().replace(
            "imagePullPolicy: Always", "imagePullPolicy: Always\n          restart: Never"
        )
    )

    result = _check(broken)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "CKV_K8S_11" in output  # checkov: no CPU limit
    assert "restart" in output  # kubernetes-validate --strict: no such field


def _graphrec_args(manifest: str) -> list[str]:
    """The words after ``graphrec`` in the manifest's one container: its args to the image's
    entrypoint, or to ``python -m graphrec`` when the command is torchrun (whose own options
    are checked against ``torchrun --help``)."""
    text = (K8S / "base" / manifest).read_text()
    (args,) = ARGS.findall(text)
    words = [w.strip().strip('"') for w in args.split(",")]
    if COMMAND.findall(text) != ["torchrun"]:
        return words
    at = words.index("-m")
    assert words[at + 1] == "graphrec", f"{manifest}: torchrun runs {words[at + 1]}"
    torchrun = subprocess.run(
        [str(Path(sys.executable).with_name("torchrun")), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for option in words[:at]:
        name = re.escape(option.split("=")[0])
        assert re.search(rf"{name}[\s\]]", torchrun.stdout), f"{manifest}: torchrun has no {option}"
    return words[at + 2 :]


@pytest.mark.parametrize("manifest", ["sink.yaml", "serve.yaml", "trainer.yaml"])
def test_every_container_runs_a_graphrec_command_with_options_it_has(manifest: str) -> None:
    words = _graphrec_args(manifest)
    help_text = CliRunner().invoke(app, [words[0], "--help"], env={"COLUMNS": "200"})
    assert help_text.exit_code == 0, help_text.output
    for option in (w for w in words if w.startswith("--")):
        assert option in help_text.output, f"{manifest}: graphrec {words[0]} has no {option}"


def test_the_configmaps_graphrec_toml_is_a_valid_configuration() -> None:
    config = load_config(K8S / "base" / "graphrec.toml")
    assert config.store_url.startswith("neo4j://")
    assert config.log_url.startswith("kafka://")
    assert config.grpc_address.startswith("0.0.0.0:")  # reachable from the Service
    assert config.metrics_host == "0.0.0.0"  # reachable by the probes and Prometheus
    assert str(config.models_path) == "/var/lib/graphrec/models"  # the volume's mount path
    assert "mountPath: /var/lib/graphrec/models" in (K8S / "base" / "serve.yaml").read_text()


def test_the_neo4j_password_comes_from_the_file_the_secret_is_mounted_as(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, tuple[str, str], str]] = []
    monkeypatch.setattr(Neo4jGraphStore, "__init__", lambda self, *a, **kw: seen.append(a))
    monkeypatch.delenv("GRAPHREC_NEO4J_PASSWORD", raising=False)
    secret = tmp_path / "neo4j-password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(secret))

    Neo4jGraphStore.from_url("neo4j://graphrec-neo4j:7687")

    assert seen == [("neo4j://graphrec-neo4j:7687", ("neo4j", "s3cret"), "neo4j")]
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(tmp_path / "missing"))
    with pytest.raises(GraphStoreError, match=f"{PASSWORD_FILE_ENV} names .*missing"):
        Neo4jGraphStore.from_url("neo4j://graphrec-neo4j:7687")
