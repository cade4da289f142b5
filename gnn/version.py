"""A model version: everything serving needs, as one value (``ModelVersion``) and on disk.

``models/<version>/`` holds

* ``model.safetensors``: the weights, with SageRec's category stand-ins (buffers);
* ``config.json``: the training configuration, the model's sizes and the reference time
  edge ages count back from;
* ``index.json``: the key of every item (rows of the item table), category and feature (the
  model's index spaces), LightGCN's actors, each item's leaf category and title;
* ``items.safetensors``: the item table as of the training snapshot (``embeddings``
  ``[I, d]`` float32, the final embeddings) and what embeds an item without the graph: its
  model inputs (``ancestors``, ``features``, ``id_rows``), raw features and the scaler
  (``feature_mean``, ``feature_std``), popularity and the removed flags;
* ``items.usearch``: from ``gnn.ann.EXACT_THRESHOLD`` items on, the usearch HNSW index over
  the embeddings (row ``r`` is key ``r``; ``gnn.ann``), which serving searches as it is; a
  smaller version has none;
* ``watermarks.json``: the snapshot's per-partition watermarks (``"topic:partition"`` →
  offset);
* ``metrics.json``: training history and the publish gate's figures;
* ``manifest.json``: every other file with its size and sha256 (``gnn.manifest``).

``load_version`` reads a directory with safetensors, JSON and usearch only (no pickle) and
returns it once every file matched its manifest: each file is read once into a buffer of its
own, its sha256 computed over that buffer on a thread pool while the arrays are built as views
of it (``gnn.tensorfile``: no second copy), the index is restored from checked bytes only; it
reads no graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch

from gnn.ann import Index, restore_index
from gnn.data import FloatArray, IntArray
from gnn.inputs import Content
from gnn.manifest import Buffer, VersionError, VersionFiles, read_files
from gnn.models import LightGCN, LightGCNConfig, SageConfig, SageRec
from gnn.tensorfile import TensorFileError, arrays, tensors
from gnn.train import TrainConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
INDEX = "index.json"
ITEMS = "items.safetensors"
WATERMARKS = "watermarks.json"
METRICS = "metrics.json"
ANN = "items.usearch"
FILES = (WEIGHTS, CONFIG, INDEX, ITEMS, WATERMARKS, METRICS)  # ANN is optional
Float32Array = npt.NDArray[np.float32]
T = TypeVar("T")


@dataclass(frozen=True)
class ModelIndex:
    """The model's index spaces by key."""

    items: tuple[str, ...]  # [I] item keys: rows of the item table
    id_rows: IntArray  # [I] each item's row of the model's ID table, -1 if trained without
    categories: tuple[str, ...]  # [C] category keys: rows of the category table
    features: tuple[str, ...]  # [F] numeric feature names, in the model's input order
    actors: tuple[str, ...] = ()  # [A] LightGCN only (a row per actor); empty for SageRec

    @cached_property
    def rows(self) -> dict[str, int]:
        """Item key → row of the item table, built once and shared by whoever maps keys (not
        to be changed: copy it to add rows)."""
        return dict(zip(self.items, range(len(self.items)), strict=True))


@dataclass(frozen=True)
class VersionItems:
    """The item table of the training snapshot, rows aligned with ``ModelIndex.items``."""

    embeddings: Float32Array  # [I, d] final item embeddings over the whole snapshot
    content: Content  # [I, …] model inputs (``id_rows`` is ``ModelIndex.id_rows``)
    leaves: tuple[str | None, ...]  # [I] leaf category key, None without one
    titles: tuple[str, ...]  # [I]
    raw_features: FloatArray  # [I, F] unstandardised, in the model's feature order
    feature_mean: FloatArray  # [F] the scaler: features = (raw - mean) / std
    feature_std: FloatArray  # [F]
    popularity: FloatArray  # [I] interaction count
    removed: npt.NDArray[np.bool_]  # [I]


@dataclass(frozen=True)
class ModelVersion:
    """One servable model version: the model (eval mode, CPU), its index and item table."""

    name: str
    config: TrainConfig
    model: torch.nn.Module
    index: ModelIndex
    items: VersionItems
    reference_ts: float  # edge ages are measured from here
    watermarks: dict[str, int]  # the training snapshot's, "topic:partition" → offset
    metrics: dict[str, Any] = field(default_factory=dict)
    ann: Index | None = None  # the HNSW index over ``items.embeddings`` (``gnn.ann``), if any


def load_version(directory: Path) -> ModelVersion:
    """The version saved in ``directory``, returned once all of its files matched the
    manifest.

    Raises ``VersionError`` (a ``ValueError``) naming the version and the file for a bad
    name, a missing or corrupt manifest, a missing, truncated, changed or unlisted file, or
    contents that do not fit together."""
    files = read_files(directory, FILES)
    try:
        version = _deserialise(files)
    except BaseException:
        files.confirm()  # a damaged file is reported as damaged, not as what that broke
        raise
    files.confirm()
    return version


def _deserialise(files: VersionFiles) -> ModelVersion:
    name = files.version
    config_raw = _mapping(files.json(CONFIG), name, CONFIG)
    index_raw = _mapping(files.json(INDEX), name, INDEX)
    table = _safetensors(arrays, files, ITEMS)
    weights = _safetensors(tensors, files, WEIGHTS)
    try:
        config = config_from_dict(config_raw["train_config"])
        index = ModelIndex(
            tuple(index_raw["items"]),
            table["id_rows"].astype(np.int64, copy=False),
            tuple(index_raw["categories"]),
            tuple(index_raw["features"]),
            tuple(index_raw["actors"]),
        )
        items = _items(table, index_raw)
        reference_ts = float(config_raw["reference_ts"])
        marks = _mapping(files.json(WATERMARKS), name, WATERMARKS)
        watermarks = {str(k): int(v) for k, v in marks.items()}
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, VersionError):
            raise
        raise VersionError(
            f"{name}: {CONFIG}, {INDEX} or {ITEMS} is incomplete ({exc!r})"
        ) from None
    _check_shapes(name, index, items)
    try:
        with torch.device("meta"):  # no memory and no random init: the weights replace it all
            model = build_model(config, index)
    except ValueError as exc:
        raise VersionError(f"{name}: {CONFIG}: {exc}") from None
    _load_weights(model, weights, name)
    metrics = dict(_mapping(files.json(METRICS), name, METRICS))
    ann = _ann(files, items.embeddings) if ANN in files.names else None
    return ModelVersion(name, config, model, index, items, reference_ts, watermarks, metrics, ann)


def build_model(config: TrainConfig, index: ModelIndex) -> torch.nn.Module:
    """An untrained model of ``config.model`` sized for ``index``."""
    if config.model == "sage":
        return SageRec(config.sage, len(index.categories), len(index.features), len(index.items))
    if config.model == "lightgcn":
        return LightGCN(config.lightgcn, len(index.actors), len(index.items))
    raise ValueError(f"unknown model {config.model!r}: sage or lightgcn")


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    return asdict(config)


def config_from_dict(raw: dict[str, Any]) -> TrainConfig:
    nested = ("sage", "lightgcn", "hard_rank", "target")
    return TrainConfig(
        **{k: v for k, v in raw.items() if k not in nested},
        hard_rank=tuple(raw["hard_rank"]),
        target=tuple(raw.get("target", ())),
        sage=SageConfig(**raw["sage"]),
        lightgcn=LightGCNConfig(**raw["lightgcn"]),
    )


def item_arrays(version: ModelVersion) -> dict[str, np.ndarray]:
    """``items.safetensors``' arrays of ``version`` (what ``load_version`` reads back)."""
    items = version.items
    return {
        "embeddings": np.ascontiguousarray(items.embeddings, np.float32),
        "ancestors": np.ascontiguousarray(items.content.ancestors, np.int64),
        "features": np.ascontiguousarray(items.content.features, np.float32),
        "id_rows": np.ascontiguousarray(version.index.id_rows, np.int64),
        "raw_features": np.ascontiguousarray(items.raw_features, np.float64),
        "feature_mean": np.ascontiguousarray(items.feature_mean, np.float64),
        "feature_std": np.ascontiguousarray(items.feature_std, np.float64),
        "popularity": np.ascontiguousarray(items.popularity, np.float64),
        "removed": np.ascontiguousarray(items.removed, np.bool_),
    }


def _items(arrays: dict[str, np.ndarray], index_raw: dict[str, Any]) -> VersionItems:
    id_rows = arrays["id_rows"].astype(np.int64, copy=False)
    return VersionItems(
        embeddings=arrays["embeddings"],
        content=Content(arrays["ancestors"], arrays["features"], id_rows),
        leaves=tuple(index_raw["leaves"]),
        titles=tuple(index_raw["titles"]),
        raw_features=arrays["raw_features"],
        feature_mean=arrays["feature_mean"],
        feature_std=arrays["feature_std"],
        popularity=arrays["popularity"],
        removed=arrays["removed"],
    )


def _check_shapes(name: str, index: ModelIndex, items: VersionItems) -> None:
    n, f = len(index.items), len(index.features)
    rows = {
        "embeddings": items.embeddings.shape[0],
        "ancestors": items.content.ancestors.shape[0],
        "features": items.content.features.shape[0],
        "id_rows": len(index.id_rows),
        "raw_features": items.raw_features.shape[0],
        "popularity": len(items.popularity),
        "removed": len(items.removed),
        "leaves": len(items.leaves),
        "titles": len(items.titles),
    }
    wrong = {k: v for k, v in rows.items() if v != n}
    if wrong:
        raise VersionError(f"{name}: {ITEMS}/{INDEX} rows {wrong} do not match {n} items")
    widths = (items.content.features.shape[1], items.raw_features.shape[1])
    if widths != (f, f) or items.feature_mean.shape != (f,) or items.feature_std.shape != (f,):
        raise VersionError(f"{name}: {ITEMS} feature columns do not match {f} features")


def _load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], name: str) -> None:
    try:  # the file's tensors become the parameters (``assign``): no second copy
        missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    except RuntimeError as exc:  # a shape mismatch
        raise VersionError(f"{name}: {WEIGHTS} does not fit the model ({exc})") from None
    if missing or unexpected:
        raise VersionError(
            f"{name}: {WEIGHTS} does not fit the model (missing {missing}, unexpected {unexpected})"
        )
    model.eval()


def _ann(files: VersionFiles, embeddings: Float32Array) -> Index:
    """The version's usearch index, restored (a copy, so rows can change) from checked bytes
    only: usearch's loader is not meant for arbitrary input."""
    try:
        return restore_index(files.verified(ANN).data, embeddings.shape[0], embeddings.shape[-1])
    except ValueError as exc:
        if isinstance(exc, VersionError):
            raise
        raise VersionError(f"{files.version}: {ANN} {exc}") from None


def _safetensors(
    read: Callable[[Buffer], dict[str, T]], files: VersionFiles, file: str
) -> dict[str, T]:
    """The arrays of a safetensors file of the version: views of the buffer it was read
    into, which is what its digest is computed over."""
    try:
        return read(files.read(file))
    except TensorFileError as exc:
        raise VersionError(
            f"{files.version}: {file} is not a readable safetensors file ({exc})"
        ) from None


def _mapping(value: object, name: str, file: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise VersionError(f"{name}: {file} is not a JSON object")
    return value
