"""``graphrec bench reload``: loading a model version the way the server does on a hot reload
(``serving.engine.Engine.load`` at the server's default ``exact_threshold``: every file read
once and checked against the manifest, weights, item table, the version's usearch index),
beside reading the same files raw, in the same run.

The version is synthetic but real: a SageRec of the default configuration sized for
``items`` items (its ID table grows with them), 1,000 leaf categories under 50 parents and
8 numeric features, its item table computed by the model from the items' content and, from
``exact_threshold`` items on, the usearch index over it (``index_build_s``: what each load
cost when serving built the index itself), written with ``gnn.checkpoint.write_version``.
Raw reads and loads alternate, after one untimed round of each, so both find the files in
the page cache.

``raw_s`` reads the same data with no checks and builds no objects: ``safetensors.numpy``
``load_file`` of both safetensors files, ``json.loads`` of the JSON files and usearch's
``Index.restore`` of ``items.usearch``. ``hashed_raw_s`` is a second baseline: that raw read
plus hashlib's sha256 of every file, one after another. ``verify_s`` is the manifest check
alone (``gnn.manifest.verify``, digests in parallel), which the load overlaps with
deserialising, so the load's wall time counts on a core free for them: ``raw_cpu_s`` and
``load_cpu_s`` are the CPU seconds (every thread) of each. Goal (issue 18): ``load_s`` within
1.5x of ``raw_s``. ``--no-index``: a server searching exactly (``exact_threshold`` above the
catalogue) and a version written without the index.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import safetensors.numpy

from gnn.ann import EXACT_THRESHOLD, Index, build_index
from gnn.checkpoint import write_version
from gnn.data import Interactions
from gnn.inference import FeatureScaler, SageInference
from gnn.manifest import verify
from gnn.models import SageRec
from gnn.train import TrainConfig
from gnn.version import (
    ANN,
    FILES,
    ITEMS,
    WEIGHTS,
    ModelIndex,
    ModelVersion,
    VersionItems,
    build_model,
)
from serving.engine import Engine
from serving.recommender import RecommenderConfig

GOAL = "load_s <= 1.5 x raw_s"
Progress = Callable[[str], None]
PARENTS, LEAVES_PER_PARENT, FEATURES = 50, 20, 8


def bench_reload(
    items: int = 100_000,
    repeats: int = 5,
    with_index: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, object]:
    """Load and raw-read figures of a synthetic version of ``items`` items."""
    say = progress or _stderr_progress()
    threshold = RecommenderConfig().exact_threshold if with_index else items + 1
    work = Path(tempfile.mkdtemp(prefix="graphrec-bench-reload-"))
    try:
        started = time.perf_counter()
        say(f"building a version of {items:,} items")
        version = synthetic_version("bench", items, seed, index_from=threshold)
        index_build_s = _timed(lambda: _ann_of(version, threshold))[0]
        directory = write_version(work, version, index_from=threshold)
        built_s = time.perf_counter() - started
        size_mb = sum(p.stat().st_size for p in directory.iterdir()) / 1e6
        index_mb = (directory / ANN).stat().st_size / 1e6 if (directory / ANN).exists() else 0.0
        say(f"written in {built_s:.1f} s ({size_mb:.1f} MB); {repeats} rounds of raw and load")
        rounds = _rounds(directory, items, threshold, repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    raw, load, check, hashed = (rounds[k][0] for k in ("raw", "load", "verify", "hashed"))
    ratio = statistics.median(load) / statistics.median(raw)
    say(f"load {statistics.median(load):.3f} s, raw {statistics.median(raw):.3f} s: {ratio:.2f}x")
    return {
        "bench": "reload",
        "items": items,
        "repeats": repeats,
        "version_mb": round(size_mb, 1),
        "index_mb": round(index_mb, 1),
        "build_s": round(built_s, 2),
        "index_build_s": round(index_build_s, 2),
        "exact_threshold": threshold,
        "index_in_version": index_mb > 0,
        "raw_s": _median(raw),
        "load_s": _median(load),
        "verify_s": _median(check),
        "hashed_raw_s": _median(hashed),
        "raw_s_all": [round(s, 4) for s in raw],
        "load_s_all": [round(s, 4) for s in load],
        "raw_cpu_s": _median(rounds["raw"][1]),
        "load_cpu_s": _median(rounds["load"][1]),
        "ratio": round(ratio, 3),
        "ratio_to_hashed_raw": round(statistics.median(load) / statistics.median(hashed), 3),
        "baseline": "safetensors.numpy load_file of items and weights, json.loads of the "
        "JSON files, usearch Index.restore of the index: same version, same run",
        "goal": GOAL,
        "met": bool(ratio <= 1.5),
    }


def _ann_of(version: ModelVersion, threshold: int) -> None:
    """Build the index as serving did at every load of a version without one (timing only:
    the version already holds the same index)."""
    if version.ann is not None and len(version.items.embeddings) >= threshold:
        build_index(version.items.embeddings)


def _rounds(
    directory: Path, items: int, threshold: int, repeats: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds (the process's, every thread) of the raw read, the load, the
    manifest check and the hashed raw read, per round."""
    runs: dict[str, Callable[[], object]] = {
        "raw": lambda: read_raw(directory),
        "load": lambda: _loaded(directory, threshold, items),
        "verify": lambda: verify(directory, FILES),
        "hashed": lambda: read_raw(directory, hashed=True),
    }
    figures: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in runs}
    for round_ in range(repeats + 1):  # round 0 warms the page cache and the code paths
        for name, run in runs.items():
            wall, cpu = _timed(run)
            if round_:
                figures[name][0].append(wall)
                figures[name][1].append(cpu)
    return figures


def _median(seconds: list[float]) -> float:
    return round(statistics.median(seconds), 4)


def read_raw(directory: Path, hashed: bool = False) -> int:
    """Read the version's arrays, JSON files and usearch index with no checks (``hashed``:
    and the sha256 of every file's bytes); returns the bytes of the safetensors arrays."""
    names = [*FILES, ANN] if (directory / ANN).exists() else list(FILES)
    if hashed:
        for name in names:
            hashlib.sha256((directory / name).read_bytes()).hexdigest()
    arrays = safetensors.numpy.load_file(directory / ITEMS)
    # numpy, not torch: torch's load_file maps the file and reads no byte until it is used
    weights = safetensors.numpy.load_file(directory / WEIGHTS)
    for name in FILES:
        if name.endswith(".json"):
            json.loads((directory / name).read_bytes())
    if ANN in names and Index.restore(directory / ANN) is None:
        raise RuntimeError(f"{directory / ANN} is not a usearch index")
    return sum(a.nbytes for a in [*arrays.values(), *weights.values()])


def _loaded(directory: Path, exact_threshold: int, items: int) -> Engine:
    engine = Engine.load(directory, exact_threshold)
    if engine.table.size != items:
        raise RuntimeError(f"loaded {engine.table.size} items, wrote {items}")
    return engine


def _timed(run: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def synthetic_version(
    name: str, items: int, seed: int = 0, index_from: int = EXACT_THRESHOLD
) -> ModelVersion:
    """A servable version of ``items`` items: an untrained SageRec of the default
    configuration, every item with an ID row, a leaf category, features and a title, an item
    table the model computes from that content (no edges) and, from ``index_from`` items on,
    the usearch index over it (built once: versions made from this one share it)."""
    rng = np.random.default_rng(seed)
    config = TrainConfig(seed=seed)
    parents = [f"c{p:02d}" for p in range(PARENTS)]
    leaves = [f"{p}/s{s:02d}" for p in parents for s in range(LEAVES_PER_PARENT)]
    keys = tuple(f"item-{i:07d}" for i in range(items))
    index = ModelIndex(
        keys,
        np.arange(items, dtype=np.int64),
        (*parents, *leaves),
        tuple(f"f{j}" for j in range(FEATURES)),
    )
    model = build_model(config, index).eval()
    if not isinstance(model, SageRec):
        raise TypeError(f"the default model is {type(model).__name__}, serving needs SageRec")
    leaf_of = tuple(leaves[r] for r in rng.integers(0, len(leaves), items))
    raw = rng.lognormal(size=(items, FEATURES))
    scaler = FeatureScaler.fit(index.features, raw)
    reference_ts = 1.7e9
    inference = SageInference(model, index, reference_ts, name)
    content = inference.content(keys, leaf_of, scaler.transform(raw))
    no_edges = Interactions(*(np.zeros(0, np.int64),) * 4, np.zeros(0))
    _, z = inference.forward(0, no_edges, content)
    table = VersionItems(
        embeddings=np.asarray(z, np.float32),
        content=content,
        leaves=leaf_of,
        titles=tuple(f"Item {i}" for i in range(items)),
        raw_features=raw,
        feature_mean=scaler.mean,
        feature_std=scaler.std,
        popularity=rng.zipf(1.5, items).clip(max=10_000).astype(np.float64),
        removed=np.zeros(items, np.bool_),
    )
    marks = {f"events:{p}": int(items * 10 + p) for p in range(3)}
    ann = build_index(table.embeddings) if items >= index_from else None
    return ModelVersion(name, config, model, index, table, reference_ts, marks, {}, ann)


def _stderr_progress() -> Progress:
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[bench reload {time.monotonic() - started:6.1f}s] {line}", file=sys.stderr)

    return say
