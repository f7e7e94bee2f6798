"""The ``iiilog`` command, the composition root: ``serve`` loads the config and
runs the engine, ``status`` reads a data dir beside it, ``replay`` rebuilds and
verifies views. A command that cannot do its job ends in one line on stderr
naming the config key or the path at fault, exit status 2, never a traceback;
read-only commands never create a data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from engine.cluster import ClusterConfig
from eventlog import EventLogError
from eventlog.config import EventLogConfig
from eventlog.postgres import PostgresStore

from .app import Server
from .config import ConfigError, EngineConfig, load
from .replay_cli import main as replay_main
from .replay_cli import open_log

log = logging.getLogger("iiilog")


def _public(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _reason(error: Exception, data_dir: Path) -> str:
    """Why the engine cannot start, naming the path at fault."""
    if isinstance(error, OSError):
        return f"{error.filename}: {error.strerror}" if error.filename else str(error)
    text = str(error)
    return text if str(data_dir) in text else f"{data_dir}: {text}"


def _urls(cfg: EngineConfig, ports: dict[str, int]) -> dict[str, str]:
    urls = {"worker_url": f"ws://{_public(cfg.worker.host)}:{ports['worker']}"}
    if "http" in ports and cfg.http is not None:
        urls["http_url"] = f"http://{_public(cfg.http.host)}:{ports['http']}"
    for index, listener in enumerate(cfg.rbac_listeners):
        name = "rbac" if index == 0 else f"rbac{index}"
        urls[f"{name}_url"] = f"ws://{_public(listener.host)}:{ports[name]}"
    if "stream" in ports and cfg.stream is not None:
        urls["stream_url"] = f"ws://{_public(cfg.stream.host)}:{ports['stream']}"
    return urls


async def serve(args: argparse.Namespace) -> int:
    cfg = load(Path(args.config) if args.config else None)
    if args.data_dir:
        data_dir = Path(args.data_dir)
        cfg.eventlog = cfg.eventlog.model_copy(update={"data_dir": data_dir})
    if args.database_url:  # the flag, else $IIILOG_DATABASE_URL, else the config
        cfg.eventlog = EventLogConfig.model_validate(
            {**cfg.eventlog.model_dump(), "database_url": args.database_url}
        )
    data_dir = cfg.eventlog.data_dir
    ready = data_dir / "engine.json"
    server = Server(cfg)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        await server.start()
        urls = _urls(cfg, server.ports)
        info = {"pid": os.getpid(), **urls, "data_dir": str(data_dir)}
        if server.engine is not None and server.engine.cluster.shared:
            info["node_id"] = server.engine.cluster.node_id
        ready.write_text(json.dumps(info))
    except (EventLogError, OSError) as e:
        print(f"cannot start: {_reason(e, data_dir)}", file=sys.stderr)
        await server.stop()
        return 2
    # What start-up built (modules, models, registries) lives as long as the
    # engine: out of the cyclic collector's way, so a full collection walks
    # only what requests create (a 25 ms pause otherwise, in the tail latency).
    gc.collect()
    gc.freeze()
    print("iiilog is running", flush=True)
    for name, url in urls.items():
        print(f"  {name.replace('_url', ''):<8} {url}", flush=True)
    print(f"  data     {data_dir}", flush=True)
    if cfg.eventlog.database_url and server.engine is not None:
        print(f"  log      {server.engine.store.location}", flush=True)
        print(f"  node     {server.engine.cluster.node_id}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await server.stop()
    ready.unlink(missing_ok=True)
    return 0


async def status(args: argparse.Namespace) -> int:
    """Print the log head, trigger cursors with their lag, parked deliveries and
    projection checkpoints. Read-only: works beside a running engine."""
    data_dir = Path(args.data_dir)
    try:
        store = await open_log(data_dir, args.database_url)
    except EventLogError as e:
        where = "" if args.database_url else f"{data_dir}: "
        print(f"error: {where}{e}", file=sys.stderr)
        return 2
    try:
        head = await store.read_head()
        cursors = [dataclasses.asdict(c) for c in await store.cursors()]
        projections = [dataclasses.asdict(p) for p in await store.snapshots()]
        cluster = await _cluster(store) if isinstance(store, PostgresStore) else None
    except EventLogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    pending = await _live_pending(data_dir)
    if cluster is not None:
        leaders = {le["name"]: le["node_id"] for le in cluster["leases"]}
        for c in cursors:
            c["node_id"] = leaders.get(f"trigger:{c['key']}")
    if args.json:
        out = {"head": head, "cursors": cursors, "projections": projections}
        if pending is not None:
            out["pending_triggers"] = pending
        if cluster is not None:
            out["cluster"] = cluster
        print(json.dumps(out))
        return 0
    print(f"log head: offset {head}")
    if cluster is not None:
        _print_cluster(cluster)
    print(f"trigger subscriptions: {len(cursors)}")
    for c in cursors:
        node = f"  node {c['node_id'][:8]}" if c.get("node_id") else ""
        print(
            f"  {c['trigger_type']:<8} {c['function_id']:<32} at {c['position']:>8}"
            f"  lag {head - c['position']:>7}  parked {c['parked']}{node}"
            f"  {json.dumps(c['config'])}"
        )
    if pending is not None:
        print(f"pending triggers (no provider yet): {len(pending)}")
        for t in pending:
            print(
                f"  {t['trigger_type']:<20} {t['function_id']:<32}"
                f"  provided by {t['provided_by']}"
            )
    print(f"projections: {len(projections)}")
    for p in projections:
        print(f"  {p['name']:<24} at {p['position']:>8}  lag {head - p['position']:>7}")
    return 0


async def _live_pending(data_dir: Path) -> list[dict[str, Any]] | None:
    """Pending triggers, asked of the engine running on ``data_dir`` (bindings
    live in memory, not in the log); None when none answers."""
    try:
        url = json.loads((data_dir / "engine.json").read_text())["worker_url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    call = {
        "type": "invokefunction",
        "function_id": "iiilog::triggers::pending",
        "data": {},
        "invocation_id": "iiilog-status",
    }
    try:
        async with (
            aiohttp.ClientSession() as session,
            asyncio.timeout(5),
            session.ws_connect(url) as ws,
        ):
            await ws.send_str(json.dumps(call))
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                reply = json.loads(msg.data)
                if reply.get("type") == "invocationresult":
                    result = reply.get("result") or {}
                    return list(result.get("pending", []))
    except (OSError, TimeoutError, aiohttp.ClientError, ValueError):
        return None
    return None


async def _cluster(store: PostgresStore) -> dict[str, Any]:
    """The nodes sharing the log, what each serves, and who holds what."""
    directory = store.directory()
    ttl = ClusterConfig().node_ttl_ms
    functions: dict[str, list[str]] = {}
    for f in await directory.functions(ttl):
        functions.setdefault(f.node_id, []).append(f.function_id)
    return {
        "nodes": [
            {**dataclasses.asdict(n), "functions": sorted(functions.get(n.node_id, []))}
            for n in await directory.nodes(ttl)
        ],
        "leases": [dataclasses.asdict(le) for le in await directory.leases()],
    }


def _print_cluster(cluster: dict[str, Any]) -> None:
    print(f"nodes: {len(cluster['nodes'])}")
    for n in cluster["nodes"]:
        print(f"  {n['node_id'][:8]}  {n['worker_url']:<28} {n['http_url'] or ''}")
        for fid in n["functions"]:
            print(f"      {fid}")
    roles = [le for le in cluster["leases"] if not le["name"].startswith("trigger:")]
    for le in roles:
        print(f"  {le['name']:<24} on node {le['node_id'][:8]}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["replay"]:
        return replay_main(argv[1:], prog="iiilog replay")
    parser = argparse.ArgumentParser(
        prog="iiilog",
        description="A reactive backend engine that speaks the iii worker"
        " protocol and keeps every change in a durable, append-only log.",
        epilog="Run iiilog COMMAND --help for a command's options.",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("IIILOG_LOG", "INFO"),
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING or ERROR (default: $IIILOG_LOG, else INFO)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_serve = sub.add_parser(
        "serve", help="run the engine", description="Run the engine until Ctrl-C."
    )
    p_serve.add_argument(
        "--config",
        metavar="FILE",
        help="an iii config.yaml (default: built in, with the http, stream,"
        " state, cron, pubsub and queue modules on ports $IIILOG_WORKER_PORT,"
        " $IIILOG_HTTP_PORT, $IIILOG_STREAM_PORT or 49134, 3111, 3112)",
    )
    p_serve.add_argument(
        "--database-url",
        metavar="URL",
        default=os.environ.get("IIILOG_DATABASE_URL") or None,
        help="keep the log in this PostgreSQL database, shared with every node"
        " started with the same URL (default: $IIILOG_DATABASE_URL, else the"
        " config's iiilog-eventlog database_url, else SQLite in the data dir)",
    )
    p_serve.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the log lives, created if missing (default: the config's"
        " iiilog-eventlog data_dir; built-in config: $IIILOG_DATA_DIR, else"
        " ./data)",
    )
    p_status = sub.add_parser(
        "status",
        help="log head, trigger cursors and lag, projection checkpoints",
        description="Show a data dir's log head, trigger cursors with their lag"
        " and parked records, and projection checkpoints. Read-only; works"
        " beside a running engine.",
    )
    p_status.add_argument(
        "--data-dir",
        metavar="DIR",
        default=os.environ.get("IIILOG_DATA_DIR", "./data"),
        help="the engine's data dir (default: $IIILOG_DATA_DIR, else ./data)",
    )
    p_status.add_argument(
        "--database-url",
        metavar="URL",
        default=os.environ.get("IIILOG_DATABASE_URL") or None,
        help="a PostgreSQL log: also shows the nodes, what each serves and which"
        " node delivers each subscription (default: $IIILOG_DATABASE_URL)",
    )
    p_status.add_argument(
        "--json", action="store_true", help="print one JSON object instead"
    )
    sub.add_parser(
        "replay",
        help="rebuild and verify views from the log (see iiilog replay --help)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per snapshot job every few seconds is noise, not news.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if args.command == "status":
        if args.database_url is None and not Path(args.data_dir).is_dir():
            print(f"error: {args.data_dir}: no such data dir", file=sys.stderr)
            return 2
        return asyncio.run(status(args))
    try:
        if os.environ.get("IIILOG_LOOP", "uvloop") == "uvloop":
            import uvloop

            return uvloop.run(serve(args))
        return asyncio.run(serve(args))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
