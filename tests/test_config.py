"""Configuration: defaults ◂ TOML ◂ environment, with clear errors for bad values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graphrec.config import Config, ConfigError, load_config


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No GRAPHREC_* variables and no ./graphrec.toml unless a test sets them."""
    for name in os.environ:
        if name.upper().startswith("GRAPHREC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_derive_urls_from_data_dir() -> None:
    config = load_config()
    assert config == Config()
    assert config.store_url == "sqlite://data/graph"
    assert config.log_url == "log://data/log"
    assert config.models_path == Path("data/models")


def test_file_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "g.toml"
    file.write_text('[graphrec]\ndata_dir = "/srv/g"\nbatch_size = 10\ngroup = "file"\n')
    monkeypatch.setenv("GRAPHREC_BATCH_SIZE", "25")
    config = load_config(file)
    assert config.data_dir == Path("/srv/g")  # file over default
    assert config.batch_size == 25  # environment over file
    assert config.group == "file"
    assert config.store_url == "sqlite:///srv/g/graph"


def test_graphrec_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "elsewhere.toml"
    file.write_text('[graphrec]\nstore = "neo4j://db:7687"\n')
    monkeypatch.setenv("GRAPHREC_CONFIG", str(file))
    assert load_config().store_url == "neo4j://db:7687"


def test_graphrec_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "graphrec.toml").write_text('[graphrec]\ngrpc_address = "0.0.0.0:1"\n')
    assert load_config().grpc_address == "0.0.0.0:1"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[graphrec]\nbogus = 1\n", {}, "unknown setting bogus; known: data_dir, store"),
        ("[graphrec\n", {}, "not valid TOML"),
        ("", {"GRAPHREC_BATCH_SIZE": "many"}, "batch_size='many': Input should be a valid int"),
        ("[graphrec]\nbatch_size = 0\n", {}, "batch_size=0: Input should be greater than or eq"),
        ("", {"GRAPHREC_BATCH_SIZE": "0"}, "batch_size='0': Input should be greater than or eq"),
    ],
)
def test_bad_configuration_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict[str, str], message: str
) -> None:
    file = tmp_path / "g.toml"
    file.write_text(text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_config(file)


def test_missing_named_config_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPHREC_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config()
