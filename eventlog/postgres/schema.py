"""The PostgreSQL schema of the log, versioned, and the statements on it.

Tables are prefixed ``iiilog_`` so the log can share a database with an
application. ``iiilog_head`` is the one-row counter that serializes appends:
every commit locks it first, so offsets are gapless and in commit order across
every node (a sequence would hand out numbers at insert time, and transactions
commit out of order). Values are JSON *text*, not ``jsonb``: byte for byte what
the codec wrote, key order included. Migrations run under an advisory lock, so
several nodes may start at once on an empty database.
"""

from __future__ import annotations

LOG_COLUMNS = "seq, ts, kind, scope, grp, key, old_value, new_value, extra"
NOTIFY_CHANNEL = "iiilog_log"

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
CREATE TABLE iiilog_head (
    id             INT PRIMARY KEY CHECK (id = 1),
    head           BIGINT NOT NULL,     -- the last offset ever assigned
    pruned_through BIGINT NOT NULL      -- the last stream.send pruned
);
INSERT INTO iiilog_head VALUES (1, 0, 0);
CREATE TABLE iiilog_log (
    seq       BIGINT PRIMARY KEY,
    ts        BIGINT NOT NULL,
    kind      TEXT   NOT NULL,
    scope     TEXT   NOT NULL,
    grp       TEXT,
    key       TEXT,
    old_value TEXT,
    new_value TEXT,
    extra     TEXT,
    v         INT    NOT NULL DEFAULT 1
);
CREATE INDEX iiilog_log_scope ON iiilog_log (scope, seq);
CREATE INDEX iiilog_log_addr ON iiilog_log (scope, key, seq);
CREATE INDEX iiilog_log_kind ON iiilog_log (kind, seq);
CREATE TABLE iiilog_view (
    space TEXT   NOT NULL,
    scope TEXT   NOT NULL,
    grp   TEXT   NOT NULL,
    key   TEXT   NOT NULL,
    value TEXT   NOT NULL,
    pos   BIGINT NOT NULL,
    PRIMARY KEY (space, scope, grp, key)
);
CREATE INDEX iiilog_view_pos ON iiilog_view (space, scope, grp, pos);  -- dropped by 3
CREATE TABLE iiilog_checkpoint (
    name     TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
CREATE TABLE iiilog_cursors (
    key          TEXT PRIMARY KEY,
    function_id  TEXT   NOT NULL,
    trigger_type TEXT   NOT NULL,
    config       TEXT   NOT NULL,
    position     BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL
);
CREATE TABLE iiilog_parked (
    key      TEXT   NOT NULL,
    seq      BIGINT NOT NULL,
    attempts INT    NOT NULL,
    error    TEXT   NOT NULL,
    ts       BIGINT NOT NULL,
    PRIMARY KEY (key, seq)
);
CREATE TABLE iiilog_tags (
    trace_id TEXT   NOT NULL,
    n        INT    NOT NULL,
    seq      BIGINT NOT NULL,
    ts       BIGINT NOT NULL,
    PRIMARY KEY (trace_id, n)
);
CREATE INDEX iiilog_tags_ts ON iiilog_tags (ts);
CREATE TABLE iiilog_snapshots (
    name     TEXT   PRIMARY KEY,
    position BIGINT NOT NULL,
    state    TEXT   NOT NULL,
    ts       BIGINT NOT NULL
);
""",
    ),
]
MIGRATIONS.append(
    (
        2,
        """
CREATE TABLE iiilog_nodes (
    node_id      TEXT PRIMARY KEY,
    worker_url   TEXT   NOT NULL,
    http_url     TEXT,
    stream_url   TEXT,
    started_ms   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL
);
CREATE TABLE iiilog_functions (
    namespace   TEXT NOT NULL,
    function_id TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    info        TEXT NOT NULL,
    PRIMARY KEY (namespace, function_id, node_id)
);
CREATE TABLE iiilog_routes (
    node_id     TEXT NOT NULL,
    trigger_id  TEXT NOT NULL,
    function_id TEXT NOT NULL,
    namespace   TEXT,
    config      TEXT NOT NULL,
    PRIMARY KEY (node_id, trigger_id)
);
CREATE TABLE iiilog_worker_names (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    node_id   TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE iiilog_leases (
    name       TEXT PRIMARY KEY,
    node_id    TEXT   NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE iiilog_cron_fires (
    job          TEXT   NOT NULL,
    scheduled_ms BIGINT NOT NULL,
    node_id      TEXT   NOT NULL,
    PRIMARY KEY (job, scheduled_ms)
);
""",
    )
)
# The planner, without statistics on a young table, took the narrower
# (space, scope, grp, pos) index for a commit's key lookups and filtered a
# whole group row by row (128 ms for 32 keys in a group of 19,200); the
# primary key is the only index left, lists sort their group instead.
MIGRATIONS.append((3, "DROP INDEX IF EXISTS iiilog_view_pos;"))
SCHEMA_VERSION = MIGRATIONS[-1][0]
# Concurrent starts of several nodes wait for each other here (per schema).
MIGRATION_LOCK = "SELECT pg_advisory_lock(hashtext('iiilog:' || current_schema()))"
MIGRATION_UNLOCK = "SELECT pg_advisory_unlock(hashtext('iiilog:' || current_schema()))"
VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS iiilog_schema (version INT NOT NULL);"
    " INSERT INTO iiilog_schema SELECT 0 WHERE NOT EXISTS (SELECT FROM iiilog_schema)"
)
VERSION = "SELECT version FROM iiilog_schema"
HAS_LOG = "SELECT to_regclass('iiilog_head')"
SET_VERSION = "UPDATE iiilog_schema SET version = $1"

# -- a commit --------------------------------------------------------------------
LOCK_HEAD = "SELECT head FROM iiilog_head WHERE id = 1 FOR UPDATE"
# Lookups by key go through a LATERAL ... LIMIT 1 per key: the planner cannot
# flatten it into a hash join over a sequential scan of the whole table (which
# it picks while a young table's statistics say it is small).
LOAD_VIEW_ROWS = (
    "SELECT v.space, v.scope, v.grp, v.key, v.value, v.pos"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
    " AS a(space, scope, grp, key) CROSS JOIN LATERAL (SELECT * FROM iiilog_view w"
    " WHERE w.space = a.space AND w.scope = a.scope AND w.grp = a.grp"
    " AND w.key = a.key LIMIT 1) v"
)
LOAD_TAGS = (
    f"SELECT t.trace_id, t.n, {', '.join('l.' + c for c in LOG_COLUMNS.split(', '))}"
    " FROM unnest($1::text[], $2::int[]) AS w(trace_id, n)"
    " CROSS JOIN LATERAL (SELECT * FROM iiilog_tags x WHERE x.trace_id = w.trace_id"
    " AND x.n = w.n LIMIT 1) t"
    " CROSS JOIN LATERAL (SELECT * FROM iiilog_log y WHERE y.seq = t.seq LIMIT 1) l"
)
# Everything a plan writes, in one statement (one round trip under the lock).
# No address is both deleted and upserted, and each appears once.
WRITE_PLAN = f"""
WITH records AS (
    INSERT INTO iiilog_log ({LOG_COLUMNS})
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                         $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
), tags AS (
    INSERT INTO iiilog_tags (trace_id, n, seq, ts)
    SELECT * FROM unnest($10::text[], $11::int[], $12::bigint[], $13::bigint[])
), gone AS (
    DELETE FROM iiilog_view WHERE ctid = ANY(ARRAY(
        SELECT v.ctid
        FROM unnest($14::text[], $15::text[], $16::text[], $17::text[])
            AS d(space, scope, grp, key)
        CROSS JOIN LATERAL (
            SELECT ctid FROM iiilog_view w
            WHERE w.space = d.space AND w.scope = d.scope AND w.grp = d.grp
                AND w.key = d.key
            LIMIT 1
        ) v
    ))
), rows AS (
    INSERT INTO iiilog_view (space, scope, grp, key, value, pos)
    SELECT * FROM unnest($18::text[], $19::text[], $20::text[], $21::text[],
                         $22::text[], $23::bigint[])
    ON CONFLICT (space, scope, grp, key)
    DO UPDATE SET value = EXCLUDED.value, pos = EXCLUDED.pos
), checkpoint AS (
    INSERT INTO iiilog_checkpoint (name, position) VALUES ('views', $24)
    ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position
), head AS (
    UPDATE iiilog_head SET head = $24 WHERE id = 1 RETURNING head
)
SELECT pg_notify('{NOTIFY_CHANNEL}', head::text) FROM head
"""

# -- bookkeeping -----------------------------------------------------------------
SAVE_CURSOR = (
    "INSERT INTO iiilog_cursors (key, function_id, trigger_type, config, position,"
    " updated_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO UPDATE SET"
    " position = GREATEST(iiilog_cursors.position, EXCLUDED.position),"
    " updated_ms = EXCLUDED.updated_ms"
)
PARK = (
    "INSERT INTO iiilog_parked (key, seq, attempts, error, ts) VALUES"
    " ($1, $2, $3, $4, $5) ON CONFLICT (key, seq) DO UPDATE SET"
    " attempts = EXCLUDED.attempts, error = EXCLUDED.error, ts = EXCLUDED.ts"
)
UNPARK = "DELETE FROM iiilog_parked WHERE key = $1 AND seq = $2"
SAVE_SNAPSHOT = (
    "INSERT INTO iiilog_snapshots (name, position, state, ts) VALUES"
    " ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET"
    " position = EXCLUDED.position, state = EXCLUDED.state, ts = EXCLUDED.ts"
)
PRUNE_TAGS = "DELETE FROM iiilog_tags WHERE ts < $1"
PRUNE_SENDS = """
WITH gone AS (
    DELETE FROM iiilog_log WHERE kind = 'stream.send' AND seq <= (
        SELECT MAX(seq) FROM iiilog_log WHERE kind = 'stream.send' AND ts < $1
    ) RETURNING seq
), mark AS (
    UPDATE iiilog_head SET pruned_through = GREATEST(
        pruned_through, COALESCE((SELECT MAX(seq) FROM gone), 0)) WHERE id = 1
)
SELECT COUNT(*) FROM gone
"""

# -- reads -----------------------------------------------------------------------
READ_HEAD = "SELECT head FROM iiilog_head WHERE id = 1"
READ_AFTER = (
    f"SELECT {LOG_COLUMNS} FROM iiilog_log WHERE seq > $1 ORDER BY seq LIMIT $2"
)
READ_ONE = f"SELECT {LOG_COLUMNS} FROM iiilog_log WHERE seq = $1"
READ_RANGE = (
    f"SELECT {LOG_COLUMNS} FROM iiilog_log WHERE seq > $1 AND seq <= $2"
    " ORDER BY seq LIMIT $3"
)
READ_KINDS = (
    f"SELECT {LOG_COLUMNS} FROM iiilog_log WHERE kind = ANY($1::text[]) ORDER BY seq"
)
# ``in_view`` is false only in records that change no view; the text search
# skips the JSON parse for almost every row.
IN_VIEW = (
    "(extra IS NULL OR position('\"in_view\":false' IN extra) = 0"
    " OR (extra::json ->> 'in_view') IS DISTINCT FROM 'false')"
)
VALUE_AT = (
    "SELECT new_value FROM iiilog_log WHERE scope = $1 AND key = $2 AND seq <= $3"
    f" AND kind = ANY($4::text[]) AND {IN_VIEW} ORDER BY seq DESC LIMIT 1"
)
HISTORY = (
    f"SELECT {LOG_COLUMNS} FROM iiilog_log WHERE scope = $1 AND seq <= $2"
    " AND kind = ANY($3::text[]) ORDER BY seq"
)
VIEW_GET = (
    "SELECT value FROM iiilog_view WHERE space = $1 AND scope = $2 AND grp = $3"
    " AND key = $4"
)
VIEW_LIST = (
    "SELECT value FROM iiilog_view WHERE space = $1 AND scope = $2 AND grp = $3"
    " ORDER BY pos"
)
VIEW_ITEMS = (
    "SELECT scope, grp, key, value FROM iiilog_view WHERE space = $1"
    " ORDER BY scope, grp, pos"
)
VIEW_SCOPE_GROUPS = (
    "SELECT DISTINCT scope, grp FROM iiilog_view WHERE space = $1 ORDER BY scope, grp"
)
VIEW_SCOPES = "SELECT DISTINCT scope FROM iiilog_view WHERE space = $1 ORDER BY scope"
VIEW_GROUPS = (
    "SELECT DISTINCT grp FROM iiilog_view WHERE space = $1 AND scope = $2 ORDER BY grp"
)
VIEWS_POSITION = "SELECT position FROM iiilog_checkpoint WHERE name = 'views'"
CURSOR = "SELECT position FROM iiilog_cursors WHERE key = $1"
CURSORS = (
    "SELECT c.key, c.function_id, c.trigger_type, c.config, c.position,"
    " c.updated_ms, (SELECT COUNT(*) FROM iiilog_parked p WHERE p.key = c.key)"
    " FROM iiilog_cursors c ORDER BY c.function_id, c.key"
)
PARKED = (
    "SELECT key, seq, attempts, error, ts FROM iiilog_parked"
    " WHERE $1::text IS NULL OR key = $1 ORDER BY key, seq"
)
SNAPSHOT = "SELECT position, state, ts FROM iiilog_snapshots WHERE name = $1"
SNAPSHOTS = "SELECT name, position, ts FROM iiilog_snapshots ORDER BY name"
PRUNED_THROUGH = "SELECT pruned_through FROM iiilog_head WHERE id = 1"
COMPACTED = f"""
WITH per_address AS MATERIALIZED (
    SELECT MAX(seq) AS latest,
           MAX(CASE WHEN old_value IS NULL AND new_value IS NOT NULL THEN seq END)
               AS born,
           MAX(CASE WHEN new_value IS NULL THEN seq END) AS gone
    FROM iiilog_log
    WHERE seq > $1 AND seq <= $2 AND kind <> 'stream.send' AND {IN_VIEW}
    GROUP BY scope, key, grp, substr(kind, 1, 5)
)
SELECT {LOG_COLUMNS} FROM iiilog_log WHERE seq IN (
    SELECT latest FROM per_address
    UNION ALL SELECT born FROM per_address
    UNION ALL SELECT gone FROM per_address
) ORDER BY seq
"""
