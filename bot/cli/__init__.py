"""spsbot's command line: ``spsbot --help``. Each stage's commands live in their own module."""

from __future__ import annotations

import logging

from bot.cli.base import EXIT_FAILURE, cli, exit_with
from bot.errors import one_line

# Importing a module registers its commands on ``cli``.
from bot.cli import fetching  # noqa: F401,E402
from bot.cli import searching  # noqa: F401,E402
from bot.cli import digesting  # noqa: F401,E402
from bot.cli import trials  # noqa: F401,E402
from bot.cli import ranking  # noqa: F401,E402
from bot.cli import profile  # noqa: F401,E402
from bot.cli import web  # noqa: F401,E402

__all__ = ["cli", "main"]


def main() -> None:
    """Console-script entry point: unexpected errors become one line on stderr and exit 1."""
    try:
        cli.main(prog_name="spsbot")
    except Exception as e:  # noqa: BLE001 - last resort; details with -v
        logging.getLogger("spsbot").debug("unhandled error", exc_info=True)
        exit_with(EXIT_FAILURE, one_line(e))
