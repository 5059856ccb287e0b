"""The one parser for the ISO dates and timestamps spsbot stores, reads and is given (layer 0).

Stored values are ISO 8601 (``bot.clock.now_iso``: ``2026-11-21T06:00:00+00:00``); a
source or a user may write ``Z`` for UTC, another offset, no offset (taken as UTC) or only a
date. ``parse_day_option`` reads the ``--since``/``--until`` values of the command line.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

from bot.errors import UserError

__all__ = ["DateError", "parse_timestamp", "parse_day", "parse_day_option"]

# YYYY, YYYY-MM or YYYY-MM-DD, with '-' or '/' and one- or two-digit month and day.
_DAY_FORMS = re.compile(r"(\d{4})(?:[-/](\d{1,2}))?(?:[-/](\d{1,2}))?")


class DateError(UserError, ValueError):
    """A date the user gave that cannot be read (one line naming the option and the value)."""


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 timestamp or date as an aware datetime: ``Z`` and offsets kept, no offset = UTC,
    a date alone = its midnight UTC. ValueError if ``value`` is not ISO 8601."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_day(value: str) -> date:
    """The calendar day an ISO date or timestamp names, as written (``2026-11-21T23:30:00-05:00`` is
    the 21st): its first ten characters. ValueError if they are not a date."""
    return date.fromisoformat(value.strip()[:10])


def parse_day_option(value: str | None, option: str = "--since", *, end: bool = False) -> str | None:
    """A command line's date option: YYYY, YYYY-MM, YYYY-MM-DD (``-`` or ``/``) or an ISO timestamp.

    A day form becomes ``YYYY-MM-DD``; with ``end`` a year or month is padded to its last day
    (``-12``, ``-31``: "-31" sorts after any real day of the month), else to its first. A timestamp
    keeps its time (``datetime.isoformat``). None stays None; anything else is a DateError.
    """
    if value is None or not value.strip():
        return None
    match = _DAY_FORMS.fullmatch(value.strip())
    try:
        if not match:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).isoformat()
        year, month, day = match.group(1), match.group(2), match.group(3)
        if day:
            return date(int(year), int(month), int(day)).isoformat()
        if month and not 1 <= int(month) <= 12:
            raise ValueError(month)
        return f"{year}-{int(month) if month else (12 if end else 1):02d}-{31 if end else 1:02d}"
    except ValueError:
        raise DateError(f"{option} must be a date like 2026-11-01 (or 2026-11, 2026, an ISO timestamp), "
                        f"got {value!r}: not a date") from None
