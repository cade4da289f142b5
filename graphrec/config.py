"""Configuration, read only at entry points: defaults ◂ ``[graphrec]`` TOML table ◂ GRAPHREC_*
environment (command-line options override all three where the commands take them)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from graphstore import DedupWindow

CONFIG_ENV = "GRAPHREC_CONFIG"
DEFAULT_CONFIG_FILE = Path("graphrec.toml")


class ConfigError(ValueError):
    """The configuration file or environment holds something unusable."""


class Config(BaseSettings):
    """What the commands default to; ``load_config`` reads it."""

    model_config = SettingsConfigDict(env_prefix="GRAPHREC_", extra="forbid", frozen=True)

    data_dir: Path = Path("data")  # where the embedded store, log and models live
    store: str = ""  # graph store URL; default sqlite://<data_dir>/graph
    log: str = ""  # event log URL; default log://<data_dir>/log
    models_dir: str = ""  # default <data_dir>/models
    group: str = "graphrec-sink"  # consumer group of the sink
    batch_size: int = Field(2_000, ge=1)  # records per graph transaction
    grpc_address: str = "127.0.0.1:50051"  # where `graphrec serve` listens
    metrics_host: str = "127.0.0.1"  # where /metrics listens (--metrics-port); 0.0.0.0: all
    # The sink drops an event whose event_id it accepted within the last dedup_window_s
    # seconds (ingest time) and among the last dedup_max_ids ids; 0 in either turns it off.
    dedup_window_s: float = Field(24 * 3600.0, ge=0)
    dedup_max_ids: int = Field(1_000_000, ge=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment beats the constructor's arguments, which carry the TOML table.
        return env_settings, init_settings

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite://{self.data_dir / 'graph'}"

    @property
    def log_url(self) -> str:
        return self.log or f"log://{self.data_dir / 'log'}"

    @property
    def dedup_window(self) -> DedupWindow | None:
        if not (self.dedup_window_s and self.dedup_max_ids):
            return None
        return DedupWindow(self.dedup_window_s, self.dedup_max_ids)

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir) if self.models_dir else self.data_dir / "models"


def load_config(path: Path | None = None) -> Config:
    """Defaults, then the ``[graphrec]`` table of the TOML file (``path``, ``$GRAPHREC_CONFIG``
    or ./graphrec.toml), then the GRAPHREC_* environment."""
    named = path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    file = named or DEFAULT_CONFIG_FILE
    table: dict[str, Any] = {}
    if file.is_file():
        try:
            table = tomllib.loads(file.read_text()).get("graphrec", {})
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    elif named is not None:
        raise ConfigError(f"config file {file} does not exist")
    try:
        return Config(**table)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, file)) from None


def _explain(exc: ValidationError, file: Path) -> str:
    """One line per bad setting, naming where settings come from."""
    lines = [f"bad configuration (from {file} [graphrec] and GRAPHREC_* variables):"]
    for e in exc.errors():
        name = ".".join(str(part) for part in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"  unknown setting {name}; known: {', '.join(Config.model_fields)}")
        else:
            lines.append(f"  {name}={e['input']!r}: {e['msg']}")
    return "\n".join(lines)
