"""The SQLite schema of the log, its views and its bookkeeping.

One file holds everything a node needs: the log (``seq`` is the offset), the
inline views with their checkpoint, trigger cursors, parked deliveries, write
tags and projection snapshots. The schema version is kept in ``meta``.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq       INTEGER PRIMARY KEY,
    ts        INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    scope     TEXT    NOT NULL,
    grp       TEXT,
    key       TEXT,
    old_value TEXT,            -- NULL: the address held nothing before
    new_value TEXT,            -- NULL: the address holds nothing after
    extra     TEXT,            -- JSON: ops, errors, event_type, origin
    v         INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS log_scope ON log (scope, seq);
CREATE TABLE IF NOT EXISTS view (
    space TEXT    NOT NULL,    -- 'state' or 'stream'
    scope TEXT    NOT NULL,
    grp   TEXT    NOT NULL,    -- '' for state
    key   TEXT    NOT NULL,
    value TEXT    NOT NULL,
    pos   INTEGER NOT NULL,    -- offset that created the key: list order
    PRIMARY KEY (space, scope, grp, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS view_pos ON view (space, scope, grp, pos);
CREATE TABLE IF NOT EXISTS checkpoint (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_addr ON log (scope, key, seq);
CREATE INDEX IF NOT EXISTS log_kind ON log (kind, seq);
CREATE TABLE IF NOT EXISTS cursors (   -- durable trigger subscriptions
    key          TEXT PRIMARY KEY,     -- function id + trigger type + config
    function_id  TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    config       TEXT NOT NULL,
    position     INTEGER NOT NULL,     -- every record <= position was handled
    updated_ms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS parked (    -- deliveries that kept failing
    key      TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    error    TEXT NOT NULL,
    ts       INTEGER NOT NULL,
    PRIMARY KEY (key, seq)
);
CREATE TABLE IF NOT EXISTS dedupe (    -- writes made while handling a delivery
    trace_id TEXT NOT NULL,
    n        INTEGER NOT NULL,         -- the handler's n-th write
    seq      INTEGER NOT NULL,         -- the record it produced
    ts       INTEGER NOT NULL,
    PRIMARY KEY (trace_id, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS projections (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    state    TEXT NOT NULL,
    ts       INTEGER NOT NULL
);
"""

# The statements of a commit.
INSERT_LOG = (
    "INSERT INTO log(seq, ts, kind, scope, grp, key, old_value, new_value, extra)"
    " VALUES (?,?,?,?,?,?,?,?,?)"
)
INSERT_TAG = "INSERT INTO dedupe(trace_id, n, seq, ts) VALUES (?,?,?,?)"
DELETE_VIEW = "DELETE FROM view WHERE space=? AND scope=? AND grp=? AND key=?"
UPSERT_VIEW = (
    "INSERT INTO view(space, scope, grp, key, value, pos) VALUES (?,?,?,?,?,?)"
    " ON CONFLICT(space, scope, grp, key) DO UPDATE SET value=excluded.value,"
    " pos=excluded.pos"
)
SET_VIEWS_CHECKPOINT = (
    "INSERT INTO checkpoint(name, position) VALUES ('views', ?)"
    " ON CONFLICT(name) DO UPDATE SET position=excluded.position"
)
# The current view rows of a set of addresses (a JSON array of 4-arrays).
LOAD_VIEW_ROWS = (
    "SELECT v.space, v.scope, v.grp, v.key, v.value, v.pos FROM json_each(?) j"
    " JOIN view v ON v.space = json_extract(j.value, '$[0]')"
    " AND v.scope = json_extract(j.value, '$[1]')"
    " AND v.grp = json_extract(j.value, '$[2]')"
    " AND v.key = json_extract(j.value, '$[3]')"
)
# The records earlier deliveries produced for a set of tags.
LOAD_TAGS = (
    "SELECT d.trace_id, d.n, l.seq, l.ts, l.kind, l.scope, l.grp, l.key,"
    " l.old_value, l.new_value, l.extra FROM json_each(?) j"
    " JOIN dedupe d ON d.trace_id = json_extract(j.value, '$[0]')"
    " AND d.n = json_extract(j.value, '$[1]')"
    " JOIN log l ON l.seq = d.seq"
)

# Bookkeeping.
SAVE_CURSOR = (
    "INSERT INTO cursors(key, function_id, trigger_type, config, position,"
    " updated_ms) VALUES (?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET"
    " position=MAX(position, excluded.position), updated_ms=excluded.updated_ms"
)
PARK = (
    "INSERT INTO parked(key, seq, attempts, error, ts) VALUES (?,?,?,?,?)"
    " ON CONFLICT(key, seq) DO UPDATE SET attempts=excluded.attempts,"
    " error=excluded.error, ts=excluded.ts"
)
UNPARK = "DELETE FROM parked WHERE key=? AND seq=?"
SAVE_SNAPSHOT = (
    "INSERT INTO projections(name, position, state, ts) VALUES (?,?,?,?)"
    " ON CONFLICT(name) DO UPDATE SET position=excluded.position,"
    " state=excluded.state, ts=excluded.ts"
)
PRUNE_TAGS = "DELETE FROM dedupe WHERE ts < ?"
SENDS_TO_PRUNE = "SELECT MAX(seq) FROM log WHERE kind='stream.send' AND ts < ?"
PRUNE_SENDS = "DELETE FROM log WHERE kind='stream.send' AND seq <= ?"
SET_PRUNED_THROUGH = (
    "INSERT INTO meta(key, value) VALUES ('sends_pruned_through', ?)"
    " ON CONFLICT(key) DO UPDATE SET value=MAX(CAST(value AS INTEGER),"
    " CAST(excluded.value AS INTEGER))"
)

# Reads.
LOG_COLUMNS = "seq, ts, kind, scope, grp, key, old_value, new_value, extra"
READ_HEAD = (
    "SELECT MAX(COALESCE((SELECT MAX(seq) FROM log), 0),"
    " COALESCE((SELECT CAST(value AS INTEGER) FROM meta"
    " WHERE key='sends_pruned_through'), 0))"
)
READ_AFTER = f"SELECT {LOG_COLUMNS} FROM log WHERE seq > ? ORDER BY seq LIMIT ?"
READ_ONE = f"SELECT {LOG_COLUMNS} FROM log WHERE seq=?"
READ_RANGE = (
    f"SELECT {LOG_COLUMNS} FROM log WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
)
VALUE_AT = (
    "SELECT new_value FROM log WHERE scope=? AND key=? AND seq<=?"
    " AND kind IN (?, ?, ?) AND (extra IS NULL OR json_extract(extra,"
    " '$.in_view') IS NOT 0) ORDER BY seq DESC LIMIT 1"
)
HISTORY = (
    f"SELECT {LOG_COLUMNS} FROM log WHERE scope=? AND seq<=? AND kind IN (?, ?, ?)"
    " ORDER BY seq"
)
VIEW_GET = "SELECT value FROM view WHERE space=? AND scope=? AND grp=? AND key=?"
VIEW_LIST = "SELECT value FROM view WHERE space=? AND scope=? AND grp=? ORDER BY pos"
VIEW_ITEMS = (
    "SELECT scope, grp, key, value FROM view WHERE space=? ORDER BY scope, grp, pos"
)
VIEW_SCOPE_GROUPS = (
    "SELECT DISTINCT scope, grp FROM view WHERE space=? ORDER BY scope, grp"
)
VIEW_SCOPES = "SELECT DISTINCT scope FROM view WHERE space=? ORDER BY scope"
VIEW_GROUPS = "SELECT DISTINCT grp FROM view WHERE space=? AND scope=? ORDER BY grp"
CHECKPOINT = "SELECT position FROM checkpoint WHERE name=?"
CURSOR = "SELECT position FROM cursors WHERE key=?"
CURSORS = (
    "SELECT c.key, c.function_id, c.trigger_type, c.config, c.position,"
    " c.updated_ms, (SELECT COUNT(*) FROM parked p WHERE p.key = c.key)"
    " FROM cursors c ORDER BY c.function_id, c.key"
)
PARKED = (
    "SELECT key, seq, attempts, error, ts FROM parked"
    " WHERE ? IS NULL OR key = ? ORDER BY key, seq"
)
SNAPSHOT = "SELECT position, state, ts FROM projections WHERE name=?"
SNAPSHOTS = "SELECT name, position, ts FROM projections ORDER BY name"
SENDS_PRUNED_THROUGH = "SELECT value FROM meta WHERE key='sends_pruned_through'"

# Per address (space, scope, group, key) of the inline views: its latest record,
# the latest record that created it and the latest one that deleted it. Records
# that change no view (stream.send, custom streams: ``in_view`` false in
# ``extra``) are left out.
COMPACTED = f"""
WITH per_address AS MATERIALIZED (
    SELECT MAX(seq) AS latest,
           MAX(CASE WHEN old_value IS NULL AND new_value IS NOT NULL THEN seq END)
               AS born,
           MAX(CASE WHEN new_value IS NULL THEN seq END) AS gone
    FROM log
    WHERE seq > :after AND seq <= :until AND kind != 'stream.send'
      AND (extra IS NULL OR instr(extra, '"in_view":false') = 0
           OR json_extract(extra, '$.in_view') IS NOT 0)
    GROUP BY scope, key, grp, substr(kind, 1, 5)  -- 'state', 'strea(m)', 'queue'
)
SELECT {LOG_COLUMNS} FROM log WHERE seq IN (
    SELECT latest FROM per_address
    UNION ALL SELECT born FROM per_address
    UNION ALL SELECT gone FROM per_address
) ORDER BY seq
"""
