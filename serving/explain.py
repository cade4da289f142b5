"""Explanations as graph paths, and the Cypher that draws exactly those paths.

A path starts at the subject with one of its edges, ranked by that edge's exact contribution
to the score (see ``SageInference.actor_contributions``), and continues to the recommended
item through what links them in the graph: the same item, another actor who touched both, or
the categories they share.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from graphstore import (
    IN_CATEGORY,
    INTERACTION_RELATIONSHIPS,
    SUBCATEGORY_OF,
    GraphStore,
    NodeKind,
    NodeRef,
)
from serving.engine import Engine
from serving.subgraph import LocalGraph
from serving.types import ExplanationPath

ActorsOfTarget = dict[NodeRef, tuple[str, int]]  # actor → (relationship, count)


def strongest_paths(
    engine: Engine,
    graph: LocalGraph,
    mine: npt.NDArray[np.int64],
    target: str,
    target_actors: ActorsOfTarget,
) -> list[ExplanationPath]:
    """One path per item the subject (actor 0 of ``graph``) touched through its edges
    ``mine``, from the edge that contributes most to the ``target`` item's score; paths that
    reach the target first, then by contribution."""
    table = engine.table
    row = table.index[target]
    z = engine.item_vectors(graph.items)
    target_vector = table.embeddings.vectors()[row].copy()
    contributions, _ = engine.inference.actor_contributions(0, graph.edges, z, target_vector)
    per_item: dict[int, list[int]] = {}
    for edge in mine.tolist():
        per_item.setdefault(int(graph.edges.item[edge]), []).append(edge)
    ranked = sorted(
        (
            (sum(contributions[es]), max(es, key=lambda x: contributions[x]))
            for es in per_item.values()
        ),
        reverse=True,
    )
    paths = []
    for total, edge in ranked:
        via = table.index.get(graph.items[int(graph.edges.item[edge])], -1)
        leaves = (table.leaves[via] if via >= 0 else None, table.leaves[row])
        paths.append(path_for_edge(graph, edge, target, leaves, target_actors, float(total)))
    paths.sort(key=lambda p: (p.nodes[-1].key == target, p.contribution), reverse=True)
    return paths


def actors_of(store: GraphStore, item_id: str, fanout: int) -> ActorsOfTarget:
    """Actors who touched the item (most recent first, at most ``fanout`` edges): the
    relationship of their strongest edge to it and its count."""
    hood = store.neighbourhood(
        [NodeRef(NodeKind.ITEM, item_id)], [fanout], INTERACTION_RELATIONSHIPS
    )
    out: ActorsOfTarget = {}
    for s, rel, count in zip(hood.src.tolist(), hood.rel, hood.count.tolist(), strict=True):
        actor = hood.nodes[s]
        if actor not in out or count > out[actor][1]:
            out[actor] = (rel, int(count))
    return out


def path_for_edge(
    graph: LocalGraph,
    edge: int,
    target: str,
    leaves: tuple[str | None, str | None],
    target_actors: ActorsOfTarget,
    contribution: float,
) -> ExplanationPath:
    """The subject's edge ``edge`` continued to ``target``. ``leaves`` are the leaf category
    keys of the edge's item and of the target; ``target_actors`` maps actors who touched the
    target to (relationship, count)."""
    e = graph.edges
    via = graph.items[int(e.item[edge])]
    nodes: list[NodeRef] = [graph.actors[0], NodeRef(NodeKind.ITEM, via)]
    rels = [INTERACTION_RELATIONSHIPS[int(e.behaviour[edge])]]
    forward = [True]
    if via != target:
        tail = _through_actor(graph, int(e.item[edge]), target, target_actors)
        for node, rel, fwd in tail or _through_categories(via, target, *leaves):
            nodes.append(node)
            rels.append(rel)
            forward.append(fwd)
    drawn = bool(graph.in_graph[edge])
    return ExplanationPath(tuple(nodes), tuple(rels), tuple(forward), contribution, drawn)


Hop = tuple[NodeRef, str, bool]


def _through_actor(
    graph: LocalGraph, via: int, target: str, target_actors: ActorsOfTarget
) -> list[Hop] | None:
    """via <-rel- actor -rel-> target, through the other actor with the most interactions."""
    e = graph.edges
    best: tuple[int, int, NodeRef] | None = None  # (strength, edge to via, actor)
    for i in np.flatnonzero((e.item == via) & (e.actor != 0) & graph.in_graph).tolist():
        actor = graph.actors[int(e.actor[i])]
        if actor in target_actors:
            strength = int(e.count[i]) + target_actors[actor][1]
            if best is None or strength > best[0]:
                best = (strength, i, actor)
    if best is None:
        return None
    _, i, actor = best
    return [
        (actor, INTERACTION_RELATIONSHIPS[int(e.behaviour[i])], False),
        (NodeRef(NodeKind.ITEM, target), target_actors[actor][0], True),
    ]


def _through_categories(
    via: str, target: str, via_leaf: str | None, target_leaf: str | None
) -> list[Hop]:
    """via -IN_CATEGORY-> leaf (-SUBCATEGORY_OF-> …) common ancestor (<- …) <- target."""
    if not via_leaf or not target_leaf:
        return []
    a, b = via_leaf.split("/"), target_leaf.split("/")
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    if common == 0:
        return []
    up = ["/".join(a[:n]) for n in range(len(a), common - 1, -1)]  # via's leaf … ancestor
    down = ["/".join(b[:n]) for n in range(common + 1, len(b) + 1)]  # below ancestor … leaf
    hops: list[Hop] = [(NodeRef(NodeKind.CATEGORY, up[0]), IN_CATEGORY, True)]
    hops += [(NodeRef(NodeKind.CATEGORY, c), SUBCATEGORY_OF, True) for c in up[1:]]
    hops += [(NodeRef(NodeKind.CATEGORY, c), SUBCATEGORY_OF, False) for c in down]
    hops.append((NodeRef(NodeKind.ITEM, target), IN_CATEGORY, False))
    return hops


def cypher_for(paths: list[ExplanationPath]) -> tuple[str, dict[str, str]]:
    """One ``MATCH p = … RETURN p`` per path joined by ``UNION ALL``; ids are parameters.

    Labels and relationship types cannot be parameters in Cypher; they come from the fixed
    vocabularies ``NodeKind`` and the graph's relationship types, never from a request. A
    path whose first hop is a request event the graph lacks is drawn from its item on.
    """
    parts, params = [], {}
    for i, path in enumerate(paths):
        pattern = []
        for h, node in enumerate(path.nodes):
            if h == 0 and not path.first_in_graph:
                continue
            name = f"p{i}n{h}"
            params[name] = node.key
            pattern.append(f"(:{NodeKind(node.kind).value} {{id: ${name}}})")
            if h < len(path.relationships):
                rel = path.relationships[h]
                pattern.append(f"-[:{rel}]->" if path.forward[h] else f"<-[:{rel}]-")
        parts.append(f"MATCH p = {''.join(pattern)} RETURN p")
    return "\nUNION ALL\n".join(parts), params


def browser_url(base: str, bolt: str, cypher: str, params: dict[str, str]) -> str:
    """A Neo4j Browser link that fills in the connect form (``bolt``, e.g.
    ``neo4j://neo4j@127.0.0.1:7687``) and puts the query in the editor, parameters inlined.

    The Browser decodes the whole address before splitting it, so ``&`` and ``#`` can never
    appear in the query: inside string literals they are written as unicode escapes.
    """
    # One pass over the query text: a value holding another parameter's name (``$p1n1``)
    # stays inside its own literal instead of being replaced again.
    inline = _PARAMETER.sub(lambda m: _literal(params[m[1]]) if m[1] in params else m[0], cypher)
    return f"{base.rstrip('/')}/?dbms={quote(bolt, safe='')}&cmd=edit&arg={quote(inline, safe='')}"


_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def _literal(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return "'" + escaped.replace("&", "\\u0026").replace("#", "\\u0023") + "'"
