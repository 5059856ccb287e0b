"""Commands that fetch from the sources: ``fetch`` and ``demo``."""

from __future__ import annotations

import click

from bot.cli.base import cli, pass_app
