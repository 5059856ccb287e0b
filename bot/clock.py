"""spsbot's clock: every stage (and the local emulators in ``bot.replay``) asks it for "now",
so tests and the demo can pin time. ``bot.store`` re-exports ``now_iso``.

``SPSBOT_NOW`` (an ISO timestamp) fakes the clock; without it this is the real UTC time.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from bot.dates import parse_timestamp


def now_iso() -> str:
    """UTC now, ISO seconds (``2026-11-21T06:00:00+00:00``), or ``SPSBOT_NOW`` when it is set."""
    fake = os.environ.get("SPSBOT_NOW")
    if fake:
        return fake
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def iso_before(seconds: float, now: str | None = None) -> str:
    """``now`` (default the store's now) minus ``seconds``, in the same ISO form: for windows
    such as "sign-ups in the last 24 hours" compared as strings in SQL."""
    from datetime import timedelta
    moment = parse_timestamp(now or now_iso())
    return (moment.astimezone(timezone.utc) - timedelta(seconds=seconds)).isoformat(timespec="seconds")
