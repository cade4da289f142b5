"""Model versions on disk: ``<dir>/model.safetensors`` + ``<dir>/meta.json``."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from gnn.data import GraphData
from gnn.models import LightGCN, LightGCNConfig, SageConfig, SageRec
from gnn.train import GnnRecommender, TrainConfig


def save(model: GnnRecommender, data: GraphData, directory: Path, extra: dict[str, Any]) -> Path:
    """Write weights and metadata (config, key tables, ``extra`` such as metrics, watermark)."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.model.state_dict().items()}
    save_file(tensors, str(directory / "model.safetensors"))
    meta = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": asdict(model.config),
        "item_keys": list(data.item_keys),
        "actor_keys": list(data.actor_keys),
        "category_keys": list(data.category_keys),
        "feature_names": list(data.feature_names),
        # items trained with an ID embedding; the others are embedded from content alone
        "known_items": np.flatnonzero(model.known_items).tolist(),
        **extra,
    }
    (directory / "meta.json").write_text(json.dumps(meta, indent=1))
    return directory


def update_meta(directory: Path, extra: dict[str, Any]) -> None:
    """Add ``extra`` to a saved version's metadata (written whole, then renamed into place)."""
    path = directory / "meta.json"
    meta = json.loads(path.read_text())
    meta.update(extra)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(path)


def current_version(models_dir: Path) -> str | None:
    """The version ``models_dir/current`` points at (written by ``graphrec train``), if any.

    Raises ValueError when it names anything but a directory inside ``models_dir`` (``..``,
    a path, a link out): a version name never reaches outside the models directory.
    """
    pointer = models_dir / "current"
    if not pointer.is_file():
        return None
    version = pointer.read_text().strip()
    if not version:
        return None
    inside = (models_dir / version).resolve().is_relative_to(models_dir.resolve())
    if Path(version).name != version or version in (".", "..") or not inside:
        raise ValueError(
            f"{pointer} names {version!r}, which is not a version directory inside "
            f"{models_dir}; write the name of one of its version directories there"
        )
    return version


def new_version(models_dir: Path) -> str:
    """A UTC timestamp name, suffixed when a version was already written in that second."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    version, n = stamp, 1
    while (models_dir / version).exists():
        n += 1
        version = f"{stamp}-{n}"
    return version


def set_current(models_dir: Path, version: str) -> None:
    """Point ``models_dir/current`` at ``version`` (written whole, then renamed: readers see
    the old pointer or the new one)."""
    tmp = models_dir / ".current.tmp"
    tmp.write_text(version)
    tmp.replace(models_dir / "current")


def load(directory: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model (weights loaded, eval mode) and its metadata."""
    meta = json.loads((directory / "meta.json").read_text())
    raw = dict(meta["config"])
    config = TrainConfig(
        **{k: v for k, v in raw.items() if k not in ("sage", "lightgcn", "hard_rank", "target")},
        hard_rank=tuple(raw["hard_rank"]),
        target=tuple(raw.get("target", ())),
        sage=SageConfig(**raw["sage"]),
        lightgcn=LightGCNConfig(**raw["lightgcn"]),
    )
    model: torch.nn.Module
    if config.model == "sage":
        model = SageRec(
            config.sage,
            len(meta["category_keys"]),
            len(meta["feature_names"]),
            len(meta["item_keys"]),
        )
    else:
        model = LightGCN(config.lightgcn, len(meta["actor_keys"]), len(meta["item_keys"]))
    missing, unexpected = model.load_state_dict(
        load_file(str(directory / "model.safetensors")), strict=False
    )
    # versions saved before items without an ID had a stand-in load without one (zeros)
    missing = [k for k in missing if k not in SageRec.STAND_INS]
    if missing or unexpected:
        raise ValueError(
            f"{directory}: weights do not fit the model (missing {missing}, unexpected "
            f"{unexpected})"
        )
    model.eval()
    meta["train_config"] = config
    return model, meta
