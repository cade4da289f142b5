"""The usearch HNSW index over an item table: built by the trainer into a model version
(``items.usearch``, see ``gnn.version``) and searched by serving (``serving.topk``).

Row ``r`` of the table is key ``r`` of the index; the metric is the inner product. Both
sides build and restore it here, with the same settings, so a restored index is the one
that was built.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# The one place usearch is imported (everything else takes Index and its results from here):
# imported before torch_geometric, it stalls torch_geometric's import for minutes (torch.jit
# scripting there throws std::bad_cast over and over), so torch_geometric comes first.
import torch_geometric  # noqa: F401
from usearch.index import BatchMatches, Index, Matches, MetricKind, ScalarKind

__all__ = [
    "CONNECTIVITY",
    "EXACT_THRESHOLD",
    "EXPANSION_ADD",
    "EXPANSION_SEARCH",
    "METRIC",
    "SCALAR",
    "BatchMatches",
    "Index",
    "Matches",
    "build_index",
    "empty_index",
    "index_bytes",
    "restore_index",
]

# From this many items on, top-K searches the index (serving's default ``exact_threshold``)
# and the trainer writes it into the version.
EXACT_THRESHOLD = 20_000

# HNSW settings. Gaussian vectors are a worst case for graph search; measured recall@10 vs exact:
# 30k × 32: 0.98 at ef 128; 100k × 64: 0.75 at ef 128, 0.88 at 256, 0.96 at 512 (connectivity 32
# with ef 256 reaches 0.98 but doubles build time and graph memory).
CONNECTIVITY = 16  # "M"
EXPANSION_ADD = 128  # "efConstruction"
EXPANSION_SEARCH = 512  # "ef"
METRIC = MetricKind.IP
SCALAR = ScalarKind.F32


def empty_index(dim: int) -> Index:
    """An index of ``dim``-dimensional vectors with no rows."""
    return Index(
        ndim=dim,
        metric=METRIC,
        dtype=SCALAR,
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )


def build_index(table: npt.NDArray[np.float32]) -> Index:
    """The index over every row of the ``[N, d]`` float32 ``table`` (keys ``0 … N-1``),
    built on all cores."""
    index = empty_index(table.shape[1])
    if len(table):
        index.add(np.arange(len(table), dtype=np.int64), table)
    return index


def index_bytes(index: Index) -> bytes:
    """The index serialised (what ``restore_index`` reads)."""
    data = index.save()
    if data is None:  # only when saving to a path
        raise RuntimeError("usearch did not return the serialised index")
    return bytes(data)


def restore_index(data: bytes | memoryview, rows: int, dim: int) -> Index:
    """The index serialised in ``data``, which must hold exactly the keys ``0 … rows-1`` as
    ``dim``-dimensional float32 vectors under the inner product; ``ValueError`` otherwise.
    The result is a copy (not a view of ``data``): rows can be added and removed."""
    try:
        meta = Index.metadata(data)
    except ValueError as exc:
        raise ValueError(f"is not a usearch index ({exc})") from None
    if meta is None:
        raise ValueError("is not a usearch index (no metadata)")
    found = (meta["kind_metric"], meta["kind_scalar"], meta["dimensions"])
    if found != (METRIC, SCALAR, dim):
        raise ValueError(
            f"holds {found[2]}-dimensional {found[1].name} vectors under {found[0].name}, "
            f"the item table needs {dim}-dimensional {SCALAR.name} under {METRIC.name}"
        )
    index = empty_index(dim)
    index.load(data)
    keys = np.asarray(index.keys, np.int64)  # distinct: the index holds one vector per key
    if len(keys) != rows or (rows and (keys.min() != 0 or keys.max() != rows - 1)):
        raise ValueError(f"holds {len(keys)} rows, not the item table's rows 0 … {rows - 1}")
    return index
