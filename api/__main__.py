"""``python -m api``: the ``iiilog`` command (``api.cli``), for a checkout
without the installed entry point."""

import sys

from .cli import main

sys.exit(main())
