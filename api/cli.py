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
import json
import logging
import os
import signal
import sys
from pathlib import Path

from eventlog import EventLogError, SqliteStore

from .app import Server
from .config import ConfigError, EngineConfig, load
from .replay_cli import main as replay_main

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
    data_dir = cfg.eventlog.data_dir
    ready = data_dir / "engine.json"
    server = Server(cfg)
    try:
        await server.start()
        urls = _urls(cfg, server.ports)
        info = {"pid": os.getpid(), **urls, "data_dir": str(data_dir)}
        ready.write_text(json.dumps(info))
    except (EventLogError, OSError) as e:
        print(f"cannot start: {_reason(e, data_dir)}", file=sys.stderr)
        await server.stop()
        return 2
    print("iiilog is running", flush=True)
    for name, url in urls.items():
        print(f"  {name.replace('_url', ''):<8} {url}", flush=True)
    print(f"  data     {data_dir}", flush=True)
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
        store = await SqliteStore.open(data_dir, read_only=True)
    except EventLogError as e:
        print(f"error: {data_dir}: {e}", file=sys.stderr)
        return 2
    try:
        head = await store.read_head()
        cursors = [dataclasses.asdict(c) for c in await store.cursors()]
        projections = [dataclasses.asdict(p) for p in await store.snapshots()]
    finally:
        await store.close()
    if args.json:
        print(
            json.dumps({"head": head, "cursors": cursors, "projections": projections})
        )
        return 0
    print(f"log head: offset {head}")
    print(f"trigger subscriptions: {len(cursors)}")
    for c in cursors:
        print(
            f"  {c['trigger_type']:<8} {c['function_id']:<32} at {c['position']:>8}"
            f"  lag {head - c['position']:>7}  parked {c['parked']}"
            f"  {json.dumps(c['config'])}"
        )
    print(f"projections: {len(projections)}")
    for p in projections:
        print(f"  {p['name']:<24} at {p['position']:>8}  lag {head - p['position']:>7}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["replay"]:
        return replay_main(argv[1:], prog="iiilog replay")
    parser = argparse.ArgumentParser(
        prog="iiilog",
        description="A reactive backend engine that speaks the iii worker"
        " protocol and keeps every change in a durable, append-only log.",
        epilog="`iiilog COMMAND --help` lists a command's options.",
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
        "--json", action="store_true", help="print one JSON object instead"
    )
    sub.add_parser(
        "replay",
        help="rebuild and verify views from the log (`iiilog replay --help`)",
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
        if not Path(args.data_dir).is_dir():  # opening the store would create it
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
