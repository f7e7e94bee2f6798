"""Rebuild and verify views and projections from the log: the same command as
``iiilog replay`` (``api/replay_cli.py``), runnable as a file.

    python scripts/replay.py --data-dir DIR [--verify | --apply | --to N ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.replay_cli import main

if __name__ == "__main__":
    sys.exit(main(prog="scripts/replay.py"))
