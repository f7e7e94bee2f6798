"""The cluster directory on PostgreSQL (``eventlog.directory.Directory``).

Times come from the database server's clock (``NOW_MS``), so liveness and
leases do not depend on the nodes' clocks agreeing. A lease changes hands in
one ``INSERT … ON CONFLICT … WHERE`` statement: only its holder or, once it has
expired, anyone may take it, and exactly one contender wins.
"""

from __future__ import annotations

from typing import Any

from ..codec import dumps, loads
from ..directory import Lease, NodeInfo, RemoteFunction, RemoteRoute
from .reads import PostgresReads, errors

NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
_LIVE = f"heartbeat_ms > {NOW_MS} - $1"

JOIN = f"""
WITH f AS (
    DELETE FROM iiilog_functions WHERE node_id = $1
), r AS (
    DELETE FROM iiilog_routes WHERE node_id = $1
), w AS (
    DELETE FROM iiilog_worker_names WHERE node_id = $1
)
INSERT INTO iiilog_nodes (node_id, worker_url, http_url, stream_url, started_ms,
                          heartbeat_ms)
VALUES ($1, $2, $3, $4, $5, {NOW_MS})
ON CONFLICT (node_id) DO UPDATE SET worker_url = EXCLUDED.worker_url,
    http_url = EXCLUDED.http_url, stream_url = EXCLUDED.stream_url,
    started_ms = EXCLUDED.started_ms, heartbeat_ms = EXCLUDED.heartbeat_ms
"""
HEARTBEAT = f"UPDATE iiilog_nodes SET heartbeat_ms = {NOW_MS} WHERE node_id = $1"
LEAVE = """
WITH f AS (
    DELETE FROM iiilog_functions WHERE node_id = $1
), r AS (
    DELETE FROM iiilog_routes WHERE node_id = $1
), w AS (
    DELETE FROM iiilog_worker_names WHERE node_id = $1
), l AS (
    DELETE FROM iiilog_leases WHERE node_id = $1
)
DELETE FROM iiilog_nodes WHERE node_id = $1
"""
# Sub-statements share one snapshot: "not a known node" sees the nodes as they
# were before ``dead`` removed its rows, so both kinds of leftovers go at once.
_GONE = (
    "node_id IN (SELECT node_id FROM dead)"
    " OR node_id NOT IN (SELECT node_id FROM iiilog_nodes)"
)
FORGET = f"""
WITH dead AS (
    DELETE FROM iiilog_nodes WHERE heartbeat_ms < {NOW_MS} - $1 RETURNING node_id
), f AS (
    DELETE FROM iiilog_functions WHERE {_GONE}
), r AS (
    DELETE FROM iiilog_routes WHERE {_GONE}
), w AS (
    DELETE FROM iiilog_worker_names WHERE {_GONE}
)
SELECT count(*) FROM dead
"""
NODES = (
    "SELECT node_id, worker_url, http_url, stream_url, started_ms, heartbeat_ms"
    f" FROM iiilog_nodes WHERE {_LIVE} ORDER BY started_ms, node_id"
)
ADD_FUNCTIONS = """
INSERT INTO iiilog_functions (namespace, function_id, node_id, info)
SELECT ns, fid, $1, info FROM unnest($2::text[], $3::text[], $4::text[])
    AS f(ns, fid, info)
ON CONFLICT (namespace, function_id, node_id) DO UPDATE SET info = EXCLUDED.info
"""
REMOVE_FUNCTIONS = """
DELETE FROM iiilog_functions f USING unnest($2::text[], $3::text[]) AS g(ns, fid)
WHERE f.node_id = $1 AND f.namespace = g.ns AND f.function_id = g.fid
"""
FUNCTIONS = f"""
SELECT f.node_id, f.namespace, f.function_id, f.info FROM iiilog_functions f
JOIN iiilog_nodes n ON n.node_id = f.node_id WHERE n.{_LIVE}
ORDER BY f.namespace, f.function_id, f.node_id
"""
ADD_ROUTES = """
INSERT INTO iiilog_routes (node_id, trigger_id, function_id, namespace, config)
SELECT $1, tid, fid, ns, cfg FROM unnest($2::text[], $3::text[], $4::text[],
    $5::text[]) AS r(tid, fid, ns, cfg)
ON CONFLICT (node_id, trigger_id) DO UPDATE SET function_id = EXCLUDED.function_id,
    namespace = EXCLUDED.namespace, config = EXCLUDED.config
"""
REMOVE_ROUTES = (
    "DELETE FROM iiilog_routes WHERE node_id = $1 AND trigger_id = ANY($2::text[])"
)
ROUTES = f"""
SELECT r.node_id, r.trigger_id, r.function_id, r.namespace, r.config
FROM iiilog_routes r JOIN iiilog_nodes n ON n.node_id = r.node_id WHERE n.{_LIVE}
ORDER BY r.node_id, r.trigger_id
"""
CLAIM_NAME = f"""
INSERT INTO iiilog_worker_names (namespace, name, node_id, worker_id)
VALUES ($2, $3, $4, $5)
ON CONFLICT (namespace, name) DO UPDATE SET node_id = EXCLUDED.node_id,
    worker_id = EXCLUDED.worker_id
WHERE $6 OR iiilog_worker_names.worker_id = EXCLUDED.worker_id
    OR NOT EXISTS (SELECT FROM iiilog_nodes n
                   WHERE n.node_id = iiilog_worker_names.node_id AND n.{_LIVE})
RETURNING worker_id
"""
NAME_HOLDER = (
    "SELECT worker_id FROM iiilog_worker_names WHERE namespace = $1 AND name = $2"
)
RELEASE_NAME = "DELETE FROM iiilog_worker_names WHERE node_id = $1 AND worker_id = $2"
ACQUIRE = f"""
INSERT INTO iiilog_leases (name, node_id, expires_ms) VALUES ($1, $2, {NOW_MS} + $3)
ON CONFLICT (name) DO UPDATE SET node_id = EXCLUDED.node_id,
    expires_ms = EXCLUDED.expires_ms
WHERE iiilog_leases.node_id = EXCLUDED.node_id
    OR iiilog_leases.expires_ms < {NOW_MS}
RETURNING node_id
"""
RELEASE = "DELETE FROM iiilog_leases WHERE name = $1 AND node_id = $2"
LEASES = "SELECT name, node_id, expires_ms FROM iiilog_leases ORDER BY name"
CLAIM_FIRE = """
WITH old AS (
    DELETE FROM iiilog_cron_fires WHERE scheduled_ms < $2::bigint - 86400000
)
INSERT INTO iiilog_cron_fires (job, scheduled_ms, node_id) VALUES ($1, $2::bigint, $3)
ON CONFLICT (job, scheduled_ms) DO NOTHING RETURNING node_id
"""


class PostgresDirectory(PostgresReads):
    """Uses the store's connection pool; every call is its own transaction."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def _run(self, sql: str, *args: Any) -> str:
        async with (
            errors("the cluster directory is unreachable"),
            self._pool.acquire() as conn,
        ):
            return str(await conn.execute(sql, *args))

    async def join(self, node: NodeInfo) -> None:
        await self._run(
            JOIN,
            node.node_id,
            node.worker_url,
            node.http_url,
            node.stream_url,
            node.started_ms,
        )

    async def heartbeat(self, node_id: str) -> bool:
        return await self._run(HEARTBEAT, node_id) != "UPDATE 0"

    async def leave(self, node_id: str) -> None:
        await self._run(LEAVE, node_id)

    async def forget(self, dead_for_ms: int) -> int:
        rows = await self._fetch(FORGET, dead_for_ms)
        return int(rows[0][0])

    async def nodes(self, ttl_ms: int) -> list[NodeInfo]:
        return [NodeInfo(*r) for r in await self._fetch(NODES, ttl_ms)]

    async def set_functions(
        self, node_id: str, added: list[RemoteFunction], removed: list[tuple[str, str]]
    ) -> None:
        if added:
            await self._run(
                ADD_FUNCTIONS,
                node_id,
                [f.namespace for f in added],
                [f.function_id for f in added],
                [dumps(f.info) for f in added],
            )
        if removed:
            await self._run(
                REMOVE_FUNCTIONS,
                node_id,
                [ns for ns, _ in removed],
                [fid for _, fid in removed],
            )

    async def functions(self, ttl_ms: int) -> list[RemoteFunction]:
        return [
            RemoteFunction(r[0], r[1], r[2], loads(r[3]))
            for r in await self._fetch(FUNCTIONS, ttl_ms)
        ]

    async def set_routes(
        self, node_id: str, added: list[RemoteRoute], removed: list[str]
    ) -> None:
        if added:
            await self._run(
                ADD_ROUTES,
                node_id,
                [r.trigger_id for r in added],
                [r.function_id for r in added],
                [r.namespace for r in added],
                [dumps(r.config) for r in added],
            )
        if removed:
            await self._run(REMOVE_ROUTES, node_id, removed)

    async def routes(self, ttl_ms: int) -> list[RemoteRoute]:
        return [
            RemoteRoute(r[0], r[1], r[2], r[3], loads(r[4]))
            for r in await self._fetch(ROUTES, ttl_ms)
        ]

    async def claim_worker_name(
        self,
        node_id: str,
        worker_id: str,
        namespace: str,
        name: str,
        ttl_ms: int,
        *,
        force: bool = False,
    ) -> str | None:
        taken = await self._fetch(
            CLAIM_NAME, ttl_ms, namespace, name, node_id, worker_id, force
        )
        if taken:
            return None
        holder = await self._value(NAME_HOLDER, namespace, name)
        return str(holder) if holder is not None else None

    async def release_worker_name(self, node_id: str, worker_id: str) -> None:
        await self._run(RELEASE_NAME, node_id, worker_id)

    async def acquire(self, name: str, node_id: str, ttl_ms: int) -> bool:
        return bool(await self._fetch(ACQUIRE, name, node_id, ttl_ms))

    async def release(self, name: str, node_id: str) -> None:
        await self._run(RELEASE, name, node_id)

    async def leases(self) -> list[Lease]:
        return [Lease(r[0], r[1], r[2]) for r in await self._fetch(LEASES)]

    async def claim_fire(self, job: str, scheduled_ms: int, node_id: str) -> bool:
        return bool(await self._fetch(CLAIM_FIRE, job, scheduled_ms, node_id))
