"""The model registry never follows a version name out of the models directory."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from serving.registry import ModelRegistry


def registry_on(models: Path) -> tuple[ModelRegistry[Path], list[Path]]:
    loaded: list[Path] = []

    def load(directory: Path) -> Path:
        loaded.append(directory)
        return directory

    return ModelRegistry(models, load), loaded


@pytest.mark.parametrize(
    "name", ["../outside", "../../etc", "/etc", "v1/../../outside", "..", "escape"]
)
def test_a_version_name_pointing_outside_is_refused_with_a_clear_error(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    models = tmp_path / "models"
    (models / "v1").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (models / "escape").symlink_to(tmp_path / "outside")  # a link out is outside too
    registry, loaded = registry_on(models)
    (models / "current").write_text("v1\n")
    assert registry.check() and registry.version == "v1"
    (models / "current").write_text(f"{name}\n")
    with caplog.at_level(logging.ERROR):
        assert not registry.check()
        assert not registry.check()  # still refused, logged once
    assert registry.version == "v1" and loaded == [models / "v1"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert str(models / "current") in errors[0] and repr(name) in errors[0]
    assert "write the name of" in errors[0] and "keeping v1" in errors[0]
