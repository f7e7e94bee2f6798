"""The ``iiilog`` command: ``serve`` runs the engine (DESIGN.md §8)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from eventlog import EventLogError, SqliteStore

from .app import Server
from .config import ConfigError, load

log = logging.getLogger("iiilog")


def _public(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


async def serve(args: argparse.Namespace) -> int:
    cfg = load(Path(args.config) if args.config else None)
    if args.data_dir:
        data_dir = Path(args.data_dir)
        cfg.eventlog = cfg.eventlog.model_copy(update={"data_dir": data_dir})
    data_dir = cfg.eventlog.data_dir
    server = Server(cfg)
    try:
        await server.start()
    except EventLogError as e:
        log.error("cannot start: %s", e)
        await server.stop()
        return 2
    host = _public(cfg.worker.host)
    urls = {"worker_url": f"ws://{host}:{server.ports['worker']}"}
    if "http" in server.ports and cfg.http is not None:
        urls["http_url"] = f"http://{_public(cfg.http.host)}:{server.ports['http']}"
    for index, rbac in enumerate(cfg.rbac_listeners):
        name = "rbac" if index == 0 else f"rbac{index}"
        urls[f"{name}_url"] = f"ws://{_public(rbac.host)}:{server.ports[name]}"
    if "stream" in server.ports and cfg.stream is not None:
        host = _public(cfg.stream.host)
        urls["stream_url"] = f"ws://{host}:{server.ports['stream']}"
    info = {"pid": os.getpid(), **urls, "data_dir": str(data_dir)}
    ready = data_dir / "engine.json"
    ready.write_text(json.dumps(info))
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
    try:
        store = await SqliteStore.open(Path(args.data_dir), read_only=True)
    except EventLogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        head = await store.read_head()
        cursors = await store.cursor_rows()
        projections = await store.projection_rows()
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
        # rewired after the replay library move
        from scripts.replay import main as replay_main

        return replay_main(argv[1:])
    parser = argparse.ArgumentParser(prog="iiilog", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("IIILOG_LOG", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the engine")
    p_serve.add_argument("--config", help="iii config.yaml (default: built in)")
    p_serve.add_argument("--data-dir", help="where the log lives (default ./data)")
    p_status = sub.add_parser("status", help="log head, trigger cursors and lag")
    p_status.add_argument(
        "--data-dir", default=os.environ.get("IIILOG_DATA_DIR", "./data")
    )
    p_status.add_argument("--json", action="store_true")
    sub.add_parser(
        "replay",
        help="rebuild and verify views from the log (see `iiilog replay --help`)",
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
