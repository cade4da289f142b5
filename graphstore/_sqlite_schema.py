"""SQL for the embedded (SQLite) backend, as module constants with parameters only."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    id   INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    UNIQUE (kind, key)
);
CREATE TABLE IF NOT EXISTS edges (
    src      INTEGER NOT NULL,
    rel      TEXT    NOT NULL,
    dst      INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    first_ts REAL    NOT NULL,
    last_ts  REAL    NOT NULL,
    PRIMARY KEY (src, rel, dst)
) WITHOUT ROWID;
DROP INDEX IF EXISTS edges_by_dst;
CREATE INDEX IF NOT EXISTS edges_by_dst_recent ON edges (dst, last_ts);
CREATE TABLE IF NOT EXISTS items (
    node     INTEGER PRIMARY KEY,
    title    TEXT    NOT NULL,
    features TEXT    NOT NULL,
    removed  INTEGER NOT NULL,
    ts       REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_events (
    event_id TEXT PRIMARY KEY,
    seen_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS watermarks (
    topic     TEXT    NOT NULL,
    partition INTEGER NOT NULL,
    offset    INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""

INSERT_NODE = "INSERT OR IGNORE INTO nodes (kind, key) VALUES (?, ?)"
SELECT_NODE_IDS = (
    "SELECT key, id FROM nodes WHERE kind = :kind AND key IN (SELECT value FROM json_each(:keys))"
)
SELECT_ALL_NODES = "SELECT id, kind, key FROM nodes"

UPSERT_EDGE = """
INSERT INTO edges (src, rel, dst, count, first_ts, last_ts) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (src, rel, dst) DO UPDATE SET
    count    = count + excluded.count,
    first_ts = min(first_ts, excluded.first_ts),
    last_ts  = max(last_ts, excluded.last_ts)
"""
DELETE_ITEM_CATEGORY = "DELETE FROM edges WHERE src = ? AND rel = 'IN_CATEGORY'"
SET_EDGE = "INSERT OR REPLACE INTO edges VALUES (?, ?, ?, 1, ?, ?)"
KEEP_EARLIEST_EDGE = """
INSERT INTO edges (src, rel, dst, count, first_ts, last_ts) VALUES (?, ?, ?, 1, ?, ?)
ON CONFLICT (src, rel, dst) DO UPDATE SET
    first_ts = min(first_ts, excluded.first_ts),
    last_ts  = max(last_ts, excluded.last_ts)
"""
SELECT_ITEMS_TS = "SELECT node, ts FROM items WHERE node IN (SELECT value FROM json_each(?))"
UPSERT_ITEM = (
    "INSERT OR REPLACE INTO items (node, title, features, removed, ts) VALUES (?, ?, ?, ?, ?)"
)
SELECT_ITEMS = "SELECT node, title, features, removed FROM items"

DELETE_ALL = (
    "DELETE FROM edges",
    "DELETE FROM items",
    "DELETE FROM watermarks",
    "DELETE FROM seen_events",
    "DELETE FROM nodes",
)

# The dedup window. seen_events is a rowid table: rowids grow with insertion, so the ids
# accepted most recently are those with the highest rowids. Expiry deletes the run of oldest
# rows before the first unexpired one (no index on seen_at to keep up: the scan stops there);
# should the clock have stepped back, an expired id behind that row stays a while, so the
# lookup checks seen_at too, and remembering it again replaces its row.
FORGET_EVENTS_BEFORE = """
DELETE FROM seen_events WHERE rowid < coalesce(
    (SELECT rowid FROM seen_events WHERE seen_at >= :cutoff ORDER BY rowid LIMIT 1),
    (SELECT max(rowid) + 1 FROM seen_events)
)
"""
SELECT_SEEN_EVENTS = """
SELECT event_id FROM seen_events
WHERE event_id IN (SELECT value FROM json_each(:ids)) AND seen_at >= :cutoff
"""
REMEMBER_EVENT = "INSERT OR REPLACE INTO seen_events (event_id, seen_at) VALUES (?, ?)"
FORGET_EVENTS_BEYOND = (
    "DELETE FROM seen_events WHERE rowid <= (SELECT max(rowid) FROM seen_events) - ?"
)
SELECT_WATERMARKS = "SELECT topic, partition, offset FROM watermarks"
UPSERT_WATERMARK = """
INSERT INTO watermarks (topic, partition, offset) VALUES (?, ?, ?)
ON CONFLICT (topic, partition) DO UPDATE SET offset = max(offset, excluded.offset)
"""

# One hop of the k-hop fetch: per frontier node, its `fanout` most recent edges (either
# direction) among the wanted types. The cost follows the fan-out, not the node's degree: for
# each direction a correlated subquery finds the `fanout`-th most recent timestamp through the
# (dst, last_ts) index (or the short primary-key run of out-edges), only edges at or after it
# are read, and a window function ranks that small superset exactly (ties included).
HOP_EDGES = """
WITH frontier (id) AS (SELECT value FROM json_each(:frontier)),
rels (rel) AS (SELECT value FROM json_each(:rels)),
cut AS (
    SELECT f.id,
        (SELECT e.last_ts FROM edges e
         WHERE e.src = f.id AND e.rel IN (SELECT rel FROM rels)
           AND (:before IS NULL OR e.first_ts < :before)
         ORDER BY e.last_ts DESC LIMIT 1 OFFSET :fanout - 1) AS out_cut,
        (SELECT e.last_ts FROM edges e
         WHERE e.dst = f.id AND e.rel IN (SELECT rel FROM rels)
           AND (:before IS NULL OR e.first_ts < :before)
         ORDER BY e.last_ts DESC LIMIT 1 OFFSET :fanout - 1) AS in_cut
    FROM frontier f
),
touching AS (
    SELECT e.src AS node, e.src, e.rel, e.dst, e.count, e.first_ts, e.last_ts
    FROM cut c JOIN edges e ON e.src = c.id
    WHERE (c.out_cut IS NULL OR e.last_ts >= c.out_cut)
    UNION ALL
    SELECT e.dst AS node, e.src, e.rel, e.dst, e.count, e.first_ts, e.last_ts
    FROM cut c JOIN edges e ON e.dst = c.id
    WHERE (c.in_cut IS NULL OR e.last_ts >= c.in_cut)
),
ranked AS (
    SELECT t.*, ROW_NUMBER() OVER (
        PARTITION BY t.node ORDER BY t.last_ts DESC, t.src, t.dst, t.rel
    ) AS rank
    FROM touching t
    WHERE t.rel IN (SELECT rel FROM rels) AND (:before IS NULL OR t.first_ts < :before)
)
SELECT src, rel, dst, count, first_ts, last_ts FROM ranked WHERE rank <= :fanout
"""
SELECT_NODES_BY_ID = "SELECT id, kind, key FROM nodes WHERE id IN (SELECT value FROM json_each(?))"

SELECT_EDGES = "SELECT src, rel, dst, count, first_ts, last_ts FROM edges"
SELECT_EDGES_BEFORE = "SELECT src, rel, dst, count, first_ts, last_ts FROM edges WHERE first_ts < ?"
COUNT_NODES = "SELECT kind, COUNT(*) FROM nodes GROUP BY kind"
COUNT_EDGES = "SELECT rel, COUNT(*), SUM(count) FROM edges GROUP BY rel"
