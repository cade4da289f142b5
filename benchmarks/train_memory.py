"""``graphrec bench train-memory``: peak RSS of sampled-mode training at two graph sizes
(1M and 5M edges by default), beside the peak of only building and holding the same graph's
sampler CSR, each in a fresh process, in the same run.

The graphs are synthetic ``GraphData`` built directly (no store): ``edges`` distinct
(actor, item, behaviour) edges over a fixed catalogue of ``items`` items (Zipf popularity,
1,000 leaf categories, 4 features) and ``edges / actor_degree`` actors, so a larger graph
is a shop with more customers and their history, not the same customers with denser
neighbourhoods. Training is ``GnnRecommender.fit`` in sampled mode for one epoch of
``steps`` steps (``TrainConfig.steps_per_epoch``): its inner split, the pair sampler, the
steps, one early-stopping evaluation (``validation_actors`` of them) and the final
embedding of every item and actor over the whole graph.

Each process measures its own peak (``VmHWM`` in ``/proc/self/status``), reset
(``/proc/self/clear_refs``) once its graph is built, so the figure is the peak while it
holds the graph and trains (or builds the CSR), not the generator's. Linux only.
Goal (issue 18): training's peak RSS grows at most 1.5x from the smaller graph to the larger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from gnn.csr import SamplerGraph
from gnn.data import BEHAVIOURS, GraphData, Interactions
from gnn.train import GnnRecommender, TrainConfig

GOAL = "training peak RSS at the largest size <= 1.5 x at the smallest"
Progress = Callable[[str], None]
PARENTS, LEAVES_PER_PARENT, FEATURES = 50, 20, 4
BEHAVIOUR_SHARES = (0.7, 0.2, 0.07, 0.03)  # view, click, cart, purchase
VALIDATION_ACTORS = 2_000
CHILD_TIMEOUT_S = 900


def bench_train_memory(
    sizes: Sequence[int] = (1_000_000, 5_000_000),
    items: int = 50_000,
    actor_degree: int = 10,
    steps: int = 3,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, object]:
    """Peak RSS of training and of the raw CSR per size, and their growth (JSON-ready)."""
    say = progress or _stderr_progress()
    runs: list[dict[str, object]] = []
    for edges in sizes:
        figures: dict[str, object] = {"edges": edges}
        for role in ("raw", "train"):
            say(f"{edges:,} edges: {role} in a fresh process")
            child = _run_child(role, edges, items, actor_degree, steps, seed)
            say(f"  peak {child['peak_mb']} MB ({child['seconds']} s)")
            figures |= {
                "actors": child["actors"],
                "import_rss_mb": child["import_rss_mb"],
                "graph_rss_mb": child["graph_rss_mb"],
                f"{role}_peak_mb": child["peak_mb"],
                f"{role}_s": child["seconds"],
            }
        runs.append(figures)
    train_ratio = _growth(runs, "train_peak_mb")
    return {
        "bench": "train-memory",
        "items": items,
        "actor_degree": actor_degree,
        "steps": steps,
        "validation_actors": VALIDATION_ACTORS,
        "sizes": runs,
        "train_peak_ratio": train_ratio,
        "raw_peak_ratio": _growth(runs, "raw_peak_mb"),
        # the same growth without the ~1 GB every process holds once its imports are done
        "train_above_imports_ratio": round(
            _above_imports(runs[-1], "train_peak_mb") / _above_imports(runs[0], "train_peak_mb"), 3
        ),
        "baseline": "a fresh process with the same imports that builds the same graph and "
        "holds its sampler CSR (SamplerGraph.from_data)",
        "goal": GOAL,
        "met": bool(train_ratio <= 1.5),
    }


def _growth(runs: list[dict[str, object]], key: str) -> float:
    first, last = float(str(runs[0][key])), float(str(runs[-1][key]))
    return round(last / first, 3)


def _above_imports(run: dict[str, object], key: str) -> float:
    return float(str(run[key])) - float(str(run["import_rss_mb"]))


def _run_child(
    role: str, edges: int, items: int, actor_degree: int, steps: int, seed: int
) -> dict[str, object]:
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    args = [str(a) for a in (role, edges, items, actor_degree, steps, seed)]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_memory", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {role} process at {edges:,} edges failed:\n{done.stderr[-3000:]}")
    figures: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def child_main(argv: Sequence[str]) -> dict[str, object]:
    """One measurement in this process: ``raw`` or ``train`` at one size."""
    role, edges, items, actor_degree, steps, seed = argv[0], *(int(a) for a in argv[1:6])
    import_mb = _status_mb("VmRSS")
    data = synthetic_graph(edges, items, actor_degree, seed)
    graph_mb = _status_mb("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    if role == "raw":
        held = SamplerGraph.from_data(data)
        if held.num_edges != edges:
            raise RuntimeError(f"the CSR holds {held.num_edges} edges, not {edges}")
    elif role == "train":
        config = TrainConfig(
            mode="sampled",
            epochs=1,
            steps_per_epoch=steps,
            validation_actors=VALIDATION_ACTORS,
            seed=seed,
        )
        GnnRecommender(config).fit(data, data.edges, seed)
    else:
        raise ValueError(f"unknown role {role!r}: raw or train")
    return {
        "role": role,
        "edges": edges,
        "actors": data.num_actors,
        "import_rss_mb": import_mb,
        "graph_rss_mb": graph_mb,
        "peak_mb": _status_mb("VmHWM"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def synthetic_graph(edges: int, items: int, actor_degree: int, seed: int) -> GraphData:
    """``edges`` distinct (actor, item, behaviour) edges of ``edges // actor_degree`` actors
    over ``items`` items with Zipf popularity, in a two-level category tree."""
    rng = np.random.default_rng(seed)
    actors = max(1, edges // actor_degree)
    types = len(BEHAVIOURS)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    popularity /= popularity.sum()
    keys = np.zeros(0, np.int64)
    while len(keys) < edges:  # draw, drop repeats, top up
        n = int((edges - len(keys)) * 1.2) + 1_000
        pair = rng.integers(0, actors, n) * items + rng.choice(items, n, p=popularity)
        drawn = pair * types + rng.choice(types, n, p=BEHAVIOUR_SHARES)
        keys = np.unique(np.concatenate([keys, drawn]))
    keys = rng.permutation(keys)[:edges]
    pair, behaviour = keys // types, keys % types
    interactions = Interactions(
        pair // items,
        pair % items,
        behaviour,
        1 + rng.geometric(0.5, edges),
        1.79e9 + rng.random(edges) * 30 * 86_400,
    )
    leaves = PARENTS * LEAVES_PER_PARENT
    return GraphData(
        actor_keys=tuple(f"a{i}" for i in range(actors)),
        item_keys=tuple(f"i{i}" for i in range(items)),
        edges=interactions,
        item_leaf=PARENTS + rng.integers(0, leaves, items),
        category_parent=np.r_[
            np.full(PARENTS, -1), np.repeat(np.arange(PARENTS), LEAVES_PER_PARENT)
        ],
        category_keys=tuple(f"c{i}" for i in range(PARENTS + leaves)),
        item_features=rng.normal(size=(items, FEATURES)),
        feature_names=tuple(f"f{j}" for j in range(FEATURES)),
    )


def _status_mb(field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError(f"/proc/self/status has no {field}: this benchmark needs Linux")


def _reset_peak() -> None:
    """Start ``VmHWM`` again from the current RSS (Linux ``clear_refs``, value 5)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def _stderr_progress() -> Progress:
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[bench train-memory {time.monotonic() - started:6.1f}s] {line}", file=sys.stderr)

    return say


if __name__ == "__main__":
    print(json.dumps(child_main(sys.argv[1:])))
