"""Cypher for the Neo4j backend: module constants, parameters only.

Labels and relationship types cannot be parameters in Cypher, so the statements that need
them are written once per label or type from the closed sets in ``types.py`` — never from
caller input.
"""

from __future__ import annotations

from typing import LiteralString, cast

from graphstore.types import INTERACTION_RELATIONSHIPS, NodeKind

CONSTRAINTS: tuple[LiteralString, ...] = (
    "CREATE CONSTRAINT user_id IF NOT EXISTS FOR (n:User) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT session_id IF NOT EXISTS FOR (n:Session) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT item_id IF NOT EXISTS FOR (n:Item) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT category_id IF NOT EXISTS FOR (n:Category) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT watermark_tp IF NOT EXISTS FOR (n:Watermark) REQUIRE n.tp IS UNIQUE",
    "CREATE CONSTRAINT seen_event_id IF NOT EXISTS FOR (n:SeenEvent) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX seen_event_seq IF NOT EXISTS FOR (n:SeenEvent) ON (n.seq)",
    "CREATE INDEX seen_event_at IF NOT EXISTS FOR (n:SeenEvent) ON (n.seen_at)",
)

READ_WATERMARKS: LiteralString = """
MATCH (w:Watermark) RETURN w.topic AS topic, w.partition AS partition, w.offset AS offset
"""

RAISE_WATERMARKS: LiteralString = """
UNWIND $marks AS m
MERGE (w:Watermark {tp: m.topic + ':' + toString(m.partition)})
ON CREATE SET w.topic = m.topic, w.partition = m.partition, w.offset = m.offset
ON MATCH SET w.offset = CASE WHEN m.offset > w.offset THEN m.offset ELSE w.offset END
"""

# The dedup window: one (:SeenEvent {id, seq, seen_at}) per remembered event id; seq numbers
# ids in acceptance order from a counter node, so the newest $max_ids are those with the
# highest seq. Expired ids are deleted at most $limit a batch (one transaction stays small
# after a long pause); the lookup ignores expired ones still there, and remembering an id
# again overwrites its expired node.
FORGET_EVENTS_BEFORE: LiteralString = """
MATCH (e:SeenEvent) WHERE e.seen_at < $cutoff
WITH e LIMIT $limit
DELETE e
"""

SELECT_SEEN_EVENTS: LiteralString = """
UNWIND $ids AS id
MATCH (e:SeenEvent {id: id}) WHERE e.seen_at >= $cutoff
RETURN e.id AS id
"""

REMEMBER_EVENTS: LiteralString = """
MERGE (c:SeenEventCounter {id: 0}) ON CREATE SET c.next = 0
WITH c, c.next AS first
SET c.next = first + size($ids)
WITH first
UNWIND range(0, size($ids) - 1) AS k
MERGE (e:SeenEvent {id: $ids[k]})
SET e.seq = first + k, e.seen_at = $now
"""

FORGET_EVENTS_BEYOND: LiteralString = """
MATCH (c:SeenEventCounter {id: 0})
WITH c.next - $max_ids AS cut
MATCH (e:SeenEvent) WHERE e.seq < cut
DELETE e
"""

# One statement per actor label for a whole batch of pre-aggregated rows; the relationship
# type is picked per row with FOREACH filters (types cannot be parameters). A row is a list
# [actor, item, rel, count, first_ts, last_ts], not a map: the driver packs every map key of
# every row in pure Python, which made a 2,000-row batch cost ~2.5x the client CPU of a list.
_MERGE_INTERACTIONS_TEMPLATE = """
UNWIND $rows AS r
MERGE (a:ACTOR {id: r[0]})
MERGE (i:Item {id: r[1]})
"""

# Applied to the rows whose r[2] (the relationship) is REL; one clause per interaction type.
_MERGE_ONE_TYPE = """FOREACH (_ IN CASE WHEN r[2] = 'REL' THEN [1] ELSE [] END |
  MERGE (a)-[e:REL]->(i)
  ON CREATE SET e.count = r[3], e.first_ts = r[4], e.last_ts = r[5],
    e.src_ACTOR = r[0], e.dst_Item = r[1]
  ON MATCH SET e.count = e.count + r[3],
    e.first_ts = CASE WHEN r[4] < e.first_ts THEN r[4] ELSE e.first_ts END,
    e.last_ts = CASE WHEN r[5] > e.last_ts THEN r[5] ELSE e.last_ts END)
"""

MERGE_INTERACTIONS: dict[NodeKind, LiteralString] = {
    actor: cast(
        LiteralString,
        (
            _MERGE_INTERACTIONS_TEMPLATE
            + "".join(_MERGE_ONE_TYPE.replace("REL", rel) for rel in INTERACTION_RELATIONSHIPS)
        ).replace("ACTOR", actor.value),
    )
    for actor in (NodeKind.USER, NodeKind.SESSION)
}

MERGE_CATEGORIES: LiteralString = """
UNWIND $categories AS c
MERGE (:Category {id: c})
"""

MERGE_SUBCATEGORIES: LiteralString = """
UNWIND $links AS l
MATCH (c:Category {id: l.child}), (p:Category {id: l.parent})
MERGE (c)-[e:SUBCATEGORY_OF]->(p)
ON CREATE SET e.count = 1, e.first_ts = l.ts, e.last_ts = l.ts,
    e.src_Category = l.child, e.dst_Category = l.parent
ON MATCH SET e.first_ts = CASE WHEN l.ts < e.first_ts THEN l.ts ELSE e.first_ts END,
    e.last_ts = CASE WHEN l.ts > e.last_ts THEN l.ts ELSE e.last_ts END
"""

# Last writer (by event time) wins; the category edge is replaced with the new leaf.
UPSERT_ITEMS: LiteralString = """
UNWIND $items AS it
MERGE (i:Item {id: it.id})
WITH i, it WHERE coalesce(i.ts, -1.0e300) <= it.ts
SET i.title = it.title, i.features = it.features, i.removed = it.removed, i.ts = it.ts
WITH i, it
CALL (i) { MATCH (i)-[old:IN_CATEGORY]->() DELETE old }
WITH i, it WHERE it.leaf IS NOT NULL
MATCH (c:Category {id: it.leaf})
CREATE (i)-[:IN_CATEGORY {count: 1, first_ts: it.ts, last_ts: it.ts,
                          src_Item: it.id, dst_Category: it.leaf}]->(c)
"""

# Every (start label, type, end label) the graph holds.
RELATION_TYPES: tuple[tuple[NodeKind, str, NodeKind], ...] = (
    *(
        (actor, rel, NodeKind.ITEM)
        for actor in (NodeKind.USER, NodeKind.SESSION)
        for rel in INTERACTION_RELATIONSHIPS
    ),
    (NodeKind.ITEM, "IN_CATEGORY", NodeKind.CATEGORY),
    (NodeKind.CATEGORY, "SUBCATEGORY_OF", NodeKind.CATEGORY),
)

# The k-hop fetch reads, per node, only its most recent edges. Every relationship carries the
# key of each endpoint as src_<Label> and dst_<Label> (e.src_User, e.dst_Item, ...), and every
# (type, side) has a range index on (that key, last_ts): a node's edges of one type, newest
# first, are one backwards index seek stopped after the fan-out (PartialTop breaks ties), so
# the work follows the fan-out, not the node's degree (docs/neo4j-latency.md).
_EDGE_KEY_INDEX = """
CREATE INDEX REL_SIDE_LABEL IF NOT EXISTS FOR ()-[e:REL]-() ON (e.SIDE_LABEL, e.last_ts)
"""

EDGE_KEY_INDEXES: tuple[LiteralString, ...] = tuple(
    sorted(
        {
            cast(LiteralString, _EDGE_KEY_INDEX.replace("SIDE_LABEL", side).replace("REL", rel))
            for src, rel, dst in RELATION_TYPES
            for side in ("src_" + src.value, "dst_" + dst.value)
        }
    )
)

# Graphs written before the endpoint keys existed get them once (GraphSchema.version < 2).
_BACKFILL_EDGE_KEYS = """
MATCH (s:SRC)-[e:REL]->(d:DST) WHERE e.src_SRC IS NULL OR e.dst_DST IS NULL
CALL (s, e, d) { SET e.src_SRC = s.id, e.dst_DST = d.id } IN TRANSACTIONS OF $batch ROWS
"""

BACKFILL_EDGE_KEYS: tuple[LiteralString, ...] = tuple(
    cast(
        LiteralString,
        _BACKFILL_EDGE_KEYS.replace("SRC", src.value).replace("DST", dst.value).replace("REL", rel),
    )
    for src, rel, dst in RELATION_TYPES
)

SCHEMA_VERSION = 2  # 2: relationships carry their endpoints' keys (src_<Label>, dst_<Label>)

READ_SCHEMA_VERSION: LiteralString = """
OPTIONAL MATCH (v:GraphSchema {id: 0}) RETURN v.version AS version
"""

SET_SCHEMA_VERSION: LiteralString = """
MERGE (v:GraphSchema {id: 0}) SET v.version = $version
"""

AWAIT_INDEXES: LiteralString = "CALL db.awaitIndexes($seconds)"

# One hop of the k-hop fetch, for frontier nodes of one label ($keys): per node, its $fanout
# most recent edges of the types in $rels (either direction), from one branch per (type, side)
# where that label sits; a branch is a backwards seek of the (endpoint key, last_ts) index,
# stopped after $fanout (PartialTop breaks ties in last_ts). The seek is a hint: planned on
# an index the statistics still think empty, the planner scans the whole index instead.
# $since_<TYPE> is -Infinity for the types asked for and +Infinity for the others: the seek's
# range is then empty, where a filter on the type would read every entry of the node in vain.
# One row per key: whether the node exists, and its edges as
# [type, outgoing, other label, other key, count, first_ts, last_ts].
_OUT_BRANCH = """
    MATCH ()-[e:REL]->(m) USING INDEX SEEK e:REL(src_LABEL, last_ts)
    WHERE e.src_LABEL = k AND e.last_ts >= $since_REL
      AND ($before IS NULL OR e.first_ts < $before)
    RETURN e, m, true AS out
    ORDER BY e.src_LABEL DESC, e.last_ts DESC, elementId(e) LIMIT $fanout"""
_IN_BRANCH = """
    MATCH (m)-[e:REL]->() USING INDEX SEEK e:REL(dst_LABEL, last_ts)
    WHERE e.dst_LABEL = k AND e.last_ts >= $since_REL
      AND ($before IS NULL OR e.first_ts < $before)
    RETURN e, m, false AS out
    ORDER BY e.dst_LABEL DESC, e.last_ts DESC, elementId(e) LIMIT $fanout"""

_HOP_EDGES = """
UNWIND $keys AS k
OPTIONAL MATCH (n:LABEL {id: k})
CALL (k) {
  CALL (k) {BRANCHES
  }
  WITH e, m, out ORDER BY e.last_ts DESC, elementId(e) LIMIT $fanout
  RETURN collect([type(e), out, labels(m)[0], m.id, e.count, e.first_ts, e.last_ts]) AS edges
}
RETURN k AS key, n IS NOT NULL AS found, edges
"""

HOP_EDGES: dict[NodeKind, LiteralString] = {
    kind: cast(
        LiteralString,
        _HOP_EDGES.replace(
            "BRANCHES",
            "\n    UNION ALL".join(
                sorted(  # a set: Item is the end of each interaction type twice (User, Session)
                    {
                        *(_OUT_BRANCH.replace("REL", r) for s, r, _ in RELATION_TYPES if s is kind),
                        *(_IN_BRANCH.replace("REL", r) for _, r, d in RELATION_TYPES if d is kind),
                    }
                )
            ),
        ).replace("LABEL", kind.value),
    )
    for kind in NodeKind
}

# The same hops under PROFILE, for benchmarks/neo4j_profile.py (docs/neo4j-latency.md).
PROFILED_HOP_EDGES: dict[NodeKind, LiteralString] = {
    kind: cast(LiteralString, "PROFILE " + HOP_EDGES[kind]) for kind in NodeKind
}

NODE_IDS: dict[NodeKind, LiteralString] = {
    NodeKind.USER: "MATCH (n:User) RETURN n.id AS id",
    NodeKind.SESSION: "MATCH (n:Session) RETURN n.id AS id",
    NodeKind.ITEM: "MATCH (n:Item) RETURN n.id AS id",
    NodeKind.CATEGORY: "MATCH (n:Category) RETURN n.id AS id",
}

ITEMS: LiteralString = """
MATCH (i:Item) WHERE i.ts IS NOT NULL
RETURN i.id AS id, i.title AS title, i.features AS features, i.removed AS removed
"""

_EDGES_TEMPLATE = """
MATCH (a:SRC)-[e:REL]->(b:DST) WHERE $before IS NULL OR e.first_ts < $before
RETURN a.id AS src, b.id AS dst, e.count AS count, e.first_ts AS first_ts, e.last_ts AS last_ts
"""


EDGES: dict[tuple[NodeKind, str, NodeKind], LiteralString] = {
    rk: cast(
        LiteralString,
        _EDGES_TEMPLATE.replace("SRC", rk[0].value)
        .replace("REL", rk[1])
        .replace("DST", rk[2].value),
    )
    for rk in RELATION_TYPES
}

COUNT_NODES: LiteralString = """
CALL () {
  MATCH (n:User) RETURN 'User' AS label, count(n) AS n
  UNION ALL MATCH (n:Session) RETURN 'Session' AS label, count(n) AS n
  UNION ALL MATCH (n:Item) RETURN 'Item' AS label, count(n) AS n
  UNION ALL MATCH (n:Category) RETURN 'Category' AS label, count(n) AS n
}
RETURN label, n
"""

COUNT_EDGES: LiteralString = """
MATCH ()-[e]->() WHERE type(e) IN $rels
RETURN type(e) AS rel, count(e) AS n, sum(e.count) AS total
"""

# Auto-commit statements (CALL ... IN TRANSACTIONS needs one): each inner transaction
# deletes at most $batch relationships, then at most $batch nodes that have none left, so a
# transaction's memory is bounded by $batch whatever the degree of the nodes.
DELETE_RELATIONSHIPS: LiteralString = """
MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF $batch ROWS
"""

DELETE_NODES: LiteralString = """
MATCH (n) CALL (n) { DELETE n } IN TRANSACTIONS OF $batch ROWS
"""
