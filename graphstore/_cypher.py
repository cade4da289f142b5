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
  ON CREATE SET e.count = r[3], e.first_ts = r[4], e.last_ts = r[5]
  ON MATCH SET e.count = e.count + r[3],
    e.first_ts = CASE WHEN r[4] < e.first_ts THEN r[4] ELSE e.first_ts END,
    e.last_ts = CASE WHEN r[5] > e.last_ts THEN r[5] ELSE e.last_ts END)
"""

MERGE_INTERACTIONS: dict[NodeKind, LiteralString] = {
    actor: cast(
        LiteralString,
        _MERGE_INTERACTIONS_TEMPLATE.replace("ACTOR", actor.value)
        + "".join(_MERGE_ONE_TYPE.replace("REL", rel) for rel in INTERACTION_RELATIONSHIPS),
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
ON CREATE SET e.count = 1, e.first_ts = l.ts, e.last_ts = l.ts
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
CREATE (i)-[:IN_CATEGORY {count: 1, first_ts: it.ts, last_ts: it.ts}]->(c)
"""

# The whole k-hop fetch in one round trip, as one row: the seeds found and every edge. Each
# hop keeps, per frontier node, the $fN most recent edges; nodes already visited do not expand
# again. Unused hops get 0.
NEIGHBOURHOOD: LiteralString = """
CALL () {
  UNWIND $users AS k MATCH (n:User {id: k}) RETURN n
  UNION ALL UNWIND $sessions AS k MATCH (n:Session {id: k}) RETURN n
  UNION ALL UNWIND $items AS k MATCH (n:Item {id: k}) RETURN n
  UNION ALL UNWIND $categories AS k MATCH (n:Category {id: k}) RETURN n
}
WITH collect(n) AS f0
CALL (f0) {
  UNWIND f0 AS f
  CALL (f) {
    MATCH (f)-[e]-(m) WHERE type(e) IN $rels AND ($before IS NULL OR e.first_ts < $before)
    RETURN e, m ORDER BY e.last_ts DESC, elementId(e) LIMIT $f1
  }
  RETURN collect(e) AS e1, collect(DISTINCT m) AS m1
}
WITH f0, e1, [m IN m1 WHERE NOT m IN f0] AS f1
CALL (f1) {
  UNWIND f1 AS f
  CALL (f) {
    MATCH (f)-[e]-(m) WHERE type(e) IN $rels AND ($before IS NULL OR e.first_ts < $before)
    RETURN e, m ORDER BY e.last_ts DESC, elementId(e) LIMIT $f2
  }
  RETURN collect(e) AS e2, collect(DISTINCT m) AS m2
}
WITH f0, f0 + f1 AS seen, e1, e2, m2
WITH f0, seen, e1, e2, [m IN m2 WHERE NOT m IN seen] AS f2
CALL (f2) {
  UNWIND f2 AS f
  CALL (f) {
    MATCH (f)-[e]-(m) WHERE type(e) IN $rels AND ($before IS NULL OR e.first_ts < $before)
    RETURN e, m ORDER BY e.last_ts DESC, elementId(e) LIMIT $f3
  }
  RETURN collect(e) AS e3, collect(DISTINCT m) AS m3
}
WITH f0, seen + f2 AS seen, e1, e2, e3, m3
WITH f0, e1, e2, e3, [m IN m3 WHERE NOT m IN seen] AS f3
CALL (f3) {
  UNWIND f3 AS f
  CALL (f) {
    MATCH (f)-[e]-(m) WHERE type(e) IN $rels AND ($before IS NULL OR e.first_ts < $before)
    RETURN e, m ORDER BY e.last_ts DESC, elementId(e) LIMIT $f4
  }
  RETURN collect(e) AS e4
}
WITH f0, [e IN e1 | [e, 1]] + [e IN e2 | [e, 2]] + [e IN e3 | [e, 3]] + [e IN e4 | [e, 4]] AS hops
RETURN [n IN f0 | [labels(n)[0], n.id]] AS found,
       [h IN hops | [labels(startNode(h[0]))[0], startNode(h[0]).id, type(h[0]),
                     labels(endNode(h[0]))[0], endNode(h[0]).id,
                     h[0].count, h[0].first_ts, h[0].last_ts, h[1]]] AS edges
"""

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

RELATION_TYPES: tuple[tuple[NodeKind, str, NodeKind], ...] = (
    *(
        (actor, rel, NodeKind.ITEM)
        for actor in (NodeKind.USER, NodeKind.SESSION)
        for rel in INTERACTION_RELATIONSHIPS
    ),
    (NodeKind.ITEM, "IN_CATEGORY", NodeKind.CATEGORY),
    (NodeKind.CATEGORY, "SUBCATEGORY_OF", NodeKind.CATEGORY),
)

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
# deletes at most 10,000 relationships, then at most 10,000 nodes that have none left.
DELETE_RELATIONSHIPS: LiteralString = """
MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS
"""

DELETE_NODES: LiteralString = """
MATCH (n) CALL (n) { DELETE n } IN TRANSACTIONS OF 10000 ROWS
"""
