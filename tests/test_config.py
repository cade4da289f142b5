"""Configuration: defaults ◂ TOML ◂ environment, with clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphrec.config import Config, ConfigError, load_config


def test_defaults_derive_urls_from_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no graphrec.toml here
    config = load_config(env={})
    assert config == Config()
    assert config.store_url == "memory://data/graph"
    assert config.log_url == "log://data/log"


def test_file_then_environment_override(tmp_path: Path) -> None:
    file = tmp_path / "g.toml"
    file.write_text('[graphrec]\ndata_dir = "/srv/g"\nbatch_size = 10\n')
    config = load_config(file, env={"GRAPHREC_BATCH_SIZE": "25"})
    assert config.data_dir == Path("/srv/g")
    assert config.batch_size == 25
    assert config.store_url == "memory:///srv/g/graph"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[graphrec]\nbogus = 1\n", {}, "unknown settings"),
        ("[graphrec\n", {}, "not valid TOML"),
        ("", {"GRAPHREC_BATCH_SIZE": "many"}, "not a valid int"),
        ("", {"GRAPHREC_BATCH_SIZE": "0"}, "at least 1"),
    ],
)
def test_bad_configuration_is_explained(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    file = tmp_path / "g.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(file, env=env)


def test_missing_named_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(env={"GRAPHREC_CONFIG": str(tmp_path / "nope.toml")})
