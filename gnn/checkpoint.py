"""Writing model versions (the layout: ``gnn.version``) and the ``current`` pointer.

A version of at least ``gnn.ann.EXACT_THRESHOLD`` items (serving's default threshold for
searching the usearch index) gets its index, ``items.usearch``: the version's own ``ann``,
or one built over its embeddings here.

A version is written whole into ``<models>/.tmp-<version>/``, listed in its manifest, synced
and renamed into place; ``current`` is switched (write, then rename) only after that, so a
reader sees a complete version or none, and the old pointer or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import save as save_arrays
from safetensors.torch import save as save_tensors

from gnn.ann import EXACT_THRESHOLD, build_index, index_bytes
from gnn.data import GraphData
from gnn.inference import FeatureScaler, SageInference
from gnn.inputs import Content
from gnn.manifest import VersionError, check_name, sync_dir, version_dir, write_file, write_manifest
from gnn.models import LightGCN, SageRec
from gnn.train import GnnRecommender
from gnn.version import (
    ANN,
    CONFIG,
    INDEX,
    ITEMS,
    METRICS,
    WATERMARKS,
    WEIGHTS,
    ModelIndex,
    ModelVersion,
    VersionItems,
    config_to_dict,
    item_arrays,
    load_version,
)
from graphstore import IN_CATEGORY, CsrSnapshot, NodeKind

TMP_PREFIX = ".tmp-"


def snapshot_version(
    name: str,
    rec: GnnRecommender,
    data: GraphData,
    snapshot: CsrSnapshot,
    metrics: dict[str, Any] | None = None,
) -> ModelVersion:
    """The version of a model fitted on ``data`` (``from_snapshot(snapshot)``): its item
    table embeds every item of the snapshot over all of its edges, as serving would."""
    model = rec.model.cpu().eval()
    rows = np.arange(data.num_items)
    index = ModelIndex(
        data.item_keys,
        np.where(rec.known_items, rows, -1),
        data.category_keys,
        data.feature_names,
        data.actor_keys if isinstance(model, LightGCN) else (),
    )
    reference_ts = snapshot_reference_ts(snapshot)
    items = _snapshot_items(model, index, data, snapshot, reference_ts)
    return ModelVersion(
        check_name(name),
        rec.config,
        model,
        index,
        items,
        reference_ts,
        dict(snapshot.watermarks),
        dict(metrics or {}),
    )


def snapshot_reference_ts(snapshot: CsrSnapshot) -> float:
    """The newest edge's timestamp (now for a graph without edges)."""
    newest = [float(r.last_ts.max()) for r in snapshot.relations.values() if r.num_edges]
    return max(newest, default=time.time())


def _snapshot_items(
    model: torch.nn.Module,
    index: ModelIndex,
    data: GraphData,
    snapshot: CsrSnapshot,
    reference_ts: float,
) -> VersionItems:
    keys = index.items
    cats = snapshot.keys.get(NodeKind.CATEGORY, ())
    in_cat = snapshot.relation(NodeKind.ITEM, IN_CATEGORY, NodeKind.CATEGORY)
    leaves: list[str | None] = [None] * len(keys)
    for item, cat in zip(in_cat.rows().tolist(), in_cat.indices.tolist(), strict=True):
        leaves[item] = cats[cat]
    raw = np.asarray(snapshot.item_features, np.float64).reshape(len(keys), -1)
    scaler = FeatureScaler.fit(index.features, raw)
    if isinstance(model, SageRec):
        inference = SageInference(model, index, reference_ts)
        content = inference.content(keys, leaves, scaler.transform(raw))
        _, z = inference.forward(data.num_actors, data.edges, content)
    else:
        content = Content.of(data, index.id_rows >= 0)
        with torch.no_grad():
            model.set_graph(torch.as_tensor(data.edges.actor), torch.as_tensor(data.edges.item))  # type: ignore[operator]
            z = model()[1].numpy()
    e = data.edges
    removed = snapshot.item_removed if len(snapshot.item_removed) else np.zeros(len(keys), bool)
    return VersionItems(
        embeddings=np.asarray(z, np.float32),
        content=content,
        leaves=tuple(leaves),
        titles=tuple(snapshot.item_titles or ("",) * len(keys)),
        raw_features=raw,
        feature_mean=np.asarray(scaler.mean, np.float64),
        feature_std=np.asarray(scaler.std, np.float64),
        popularity=np.bincount(e.item, weights=e.count, minlength=len(keys)).astype(np.float64),
        removed=np.asarray(removed, np.bool_),
    )


def write_version(
    models_dir: Path, version: ModelVersion, index_from: int = EXACT_THRESHOLD
) -> Path:
    """Write ``version`` to ``models_dir/<name>/`` through ``.tmp-<name>/`` and one rename,
    with its usearch index (``version.ann``, else built here) when it has at least
    ``index_from`` items or an ``ann`` of its own; ``VersionError`` if that version exists
    already. Returns its directory."""
    final = version_dir(models_dir, version.name)
    if final.exists():
        raise VersionError(f"{version.name}: already exists in {models_dir}")
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = models_dir / f"{TMP_PREFIX}{version.name}"
    shutil.rmtree(tmp, ignore_errors=True)  # left by a writer that died
    tmp.mkdir()
    try:
        for name, data in _files(version, index_from).items():
            write_file(tmp / name, data)
        write_manifest(tmp, version.name)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    sync_dir(models_dir)
    return final


def _files(version: ModelVersion, index_from: int) -> dict[str, bytes]:
    tensors = {k: v.detach().cpu().contiguous() for k, v in version.model.state_dict().items()}
    index, items = version.index, version.items
    config = {
        "model": version.config.model,
        "train_config": config_to_dict(version.config),
        "reference_ts": version.reference_ts,
        "num_items": len(index.items),
    }
    keys = {
        "items": list(index.items),
        "categories": list(index.categories),
        "features": list(index.features),
        "actors": list(index.actors),
        "leaves": list(items.leaves),
        "titles": list(items.titles),
    }
    files = {
        WEIGHTS: save_tensors(tensors),
        ITEMS: save_arrays(item_arrays(version)),
        CONFIG: _json(config),
        INDEX: _json(keys),
        WATERMARKS: _json(version.watermarks),
        METRICS: _json(version.metrics),
    }
    ann = version.ann
    if ann is None and len(index.items) >= index_from:
        ann = build_index(np.ascontiguousarray(items.embeddings, np.float32))
    if ann is not None:
        rows, dim = items.embeddings.shape
        if len(ann) != rows or ann.ndim != dim:
            raise VersionError(
                f"{version.name}: its index holds {len(ann)} rows of {ann.ndim}, "
                f"its item table {rows} of {dim}"
            )
        files[ANN] = index_bytes(ann)
    return files


def _json(value: object) -> bytes:
    return json.dumps(value, indent=1, default=float).encode()


def versions(models_dir: Path) -> list[str]:
    """Names of the complete versions in ``models_dir`` (renamed into place, with a
    manifest; their files are checked when loaded), oldest name first."""
    if not models_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in models_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").is_file()
    )


def current_version(models_dir: Path) -> str | None:
    """The version ``models_dir/current`` points at, if any.

    ``VersionError`` when it names anything but a version directory inside ``models_dir``
    (``..``, a path, a link out): a version name never reaches outside the models directory.
    """
    pointer = models_dir / "current"
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    if not name:
        return None
    try:
        check_name(name)
    except VersionError as exc:
        raise VersionError(f"{pointer}: {exc}; write the name of a version directory") from None
    if not (models_dir / name).resolve().is_relative_to(models_dir.resolve()):
        raise VersionError(
            f"{pointer} names {name!r}, a link out of {models_dir}; write the name of one of "
            "its version directories there"
        )
    return name


def new_version(models_dir: Path) -> str:
    """A UTC timestamp name, suffixed when a version was already written in that second."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    version, n = stamp, 1
    while (models_dir / version).exists() or (models_dir / f"{TMP_PREFIX}{version}").exists():
        n += 1
        version = f"{stamp}-{n}"
    return version


def set_current(models_dir: Path, version: str) -> None:
    """Point ``models_dir/current`` at ``version`` (written whole, then renamed: readers see
    the old pointer or the new one)."""
    tmp = models_dir / ".current.tmp"
    write_file(tmp, check_name(version).encode())
    tmp.replace(models_dir / "current")
    sync_dir(models_dir)


def load(directory: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model of the version in ``directory`` (``load_version``) and a summary of it:
    ``version``, ``train_config``, the key tables and its metrics."""
    version = load_version(directory)
    index = version.index
    meta = {
        **version.metrics,
        "version": version.name,
        "train_config": version.config,
        "item_keys": list(index.items),
        "actor_keys": list(index.actors),
        "category_keys": list(index.categories),
        "feature_names": list(index.features),
        "known_items": np.flatnonzero(index.id_rows >= 0).tolist(),
        "watermarks": version.watermarks,
    }
    return version.model, meta
