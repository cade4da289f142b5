"""Configuration, read only at entry points: defaults ◂ TOML file ◂ GRAPHREC_* environment."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

CONFIG_ENV = "GRAPHREC_CONFIG"
DEFAULT_CONFIG_FILE = Path("graphrec.toml")


class ConfigError(ValueError):
    """The configuration file or environment holds something unusable."""


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("data")  # where the embedded store, log and models live
    store: str = ""  # graph store URL; default memory://<data_dir>/graph
    log: str = ""  # event log URL; default log://<data_dir>/log
    models_dir: str = ""  # default <data_dir>/models
    group: str = "graphrec-sink"  # consumer group of the sink
    batch_size: int = 2_000  # records per graph transaction
    grpc_address: str = "127.0.0.1:50051"  # where `graphrec serve` listens

    @property
    def store_url(self) -> str:
        return self.store or f"memory://{self.data_dir / 'graph'}"

    @property
    def log_url(self) -> str:
        return self.log or f"log://{self.data_dir / 'log'}"

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir) if self.models_dir else self.data_dir / "models"


def load_config(path: Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Defaults, then the TOML file (``$GRAPHREC_CONFIG`` or ./graphrec.toml), then environment."""
    env = dict(os.environ if env is None else env)
    file = path or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else DEFAULT_CONFIG_FILE)
    values: dict[str, Any] = {}
    if file.is_file():
        try:
            values.update(tomllib.loads(file.read_text()).get("graphrec", {}))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    elif path is not None or env.get(CONFIG_ENV):
        raise ConfigError(f"config file {file} does not exist")
    for f in fields(Config):
        key = f"GRAPHREC_{f.name.upper()}"
        if key in env:
            values[f.name] = env[key]
    return _coerce(values, source=str(file))


def _coerce(values: dict[str, Any], source: str) -> Config:
    known = {f.name: f for f in fields(Config)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown settings {unknown}; known: {sorted(known)}")
    typed: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(Config(), name)
        try:
            typed[name] = type(default)(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"setting {name}={value!r} is not a valid {type(default).__name__}"
            ) from None
    config = replace(Config(), **typed)
    if config.batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {config.batch_size}")
    return config
