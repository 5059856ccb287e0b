"""When a digest is due, the period it covers, and which unsent items are news for it.

``digest_window`` gives a subscriber's (or the public issue's) next period and whether it is due
(``is_due``: the frequency, ``[digest] schedule_day`` and never twice a day); ``news_for`` and
``is_news`` say which items not yet sent may go into it (see ``bot.digest.builder`` for the rule
in words). Days are the machine's local days, as cron and systemd timers fire on local time.
"""

from __future__ import annotations

from datetime import date, timedelta

from bot.config import WEEKDAYS
from bot.dates import parse_day, parse_timestamp
from bot.digest.entries import in_window
from bot.store import digests as store
from bot.clock import iso_before

DAY = 86400  # seconds
FREQUENCY_DAYS = {"daily": 1, "weekly": None, "monthly": 30}  # None = config period_days
DEFAULT_SCHEDULE_DAY = "monday"  # the day every file in schedules/ runs `spsbot run`
DEFAULT_MAX_AGE_DAYS = 60  # an item first stored longer ago than this is no longer mailed


def period_days(config) -> int:
    return int((config.digest or {}).get("period_days") or 7)


def schedule_weekday(config) -> int:
    """``[digest] schedule_day`` as a weekday number (Monday = 0)."""
    return WEEKDAYS.index(((config.digest or {}).get("schedule_day") or DEFAULT_SCHEDULE_DAY).lower())


def local_day(ts: str) -> date:
    """The calendar day of a timestamp in the machine's local time zone: cron and systemd timers
    fire on local time, so "Monday" is the local Monday (a GitHub runner's local time is UTC)."""
    return parse_timestamp(ts).astimezone().date()


def is_due(last_day: date, today: date, days: int, schedule_weekday: int) -> bool:
    """The due rule. Never twice on one day; otherwise due once ``days`` calendar days have
    passed, or on the schedule day once the period is within a week of passing. A weekly
    digest is so due on every schedule day: a Monday cron sends on the first Monday after a
    Tuesday manual run, and the period is simply what was left unsent since then. A monthly
    one goes out on the first schedule day 24 or more days after the last; a daily one every day.
    """
    gap = (today - last_day).days
    if gap < 1:
        return False
    if gap >= days:
        return True
    return today.weekday() == schedule_weekday and gap >= days - 6


def first_day(period_start: str) -> str:
    """The first day a period covers (ISO): the day after it starts. A period starts when the last
    digest ended, on a day that digest covered; a first digest's seven days end today. The header
    says these days and the digest holds what is dated in them: one rule for both."""
    return (parse_day(period_start) + timedelta(days=1)).isoformat()


def max_age_days(config) -> int:
    return int((config.digest or {}).get("max_age_days") or DEFAULT_MAX_AGE_DAYS)


def news_for(db, subscriber_id: int | None, config, now: str, period_start: str) -> dict:
    """What a subscriber (None = the public issue) may be sent now, beyond what they were sent:

    ``start``: items whose own dates reach back to this (their first digest's period start, or
    this period's for the first digest); ``joined``: items first stored after this moment (their
    first digest), whatever their dates; ``oldest``: nothing first stored before this
    (``max_age_days``); ``since``: the subscriber's last digest (sources failing since are named).
    """
    first = store.first_digest(db, subscriber_id)
    last = store.last_digest(db, subscriber_id)
    return {"start": first["period_start"] if first else period_start,
            "joined": first["created_at"] if first else None,
            "oldest": iso_before(max_age_days(config) * DAY, now),
            "since": last["created_at"] if last else period_start}


def is_news(item: dict, news: dict, now: str) -> bool:
    """Not yet sent items are news if first stored after the subscriber's first digest, or dated
    (create, Entrez or publication date) in their first digest's period or since (from its
    ``first_day``); and not older (first stored) than ``max_age_days``."""
    seen = item.get("first_seen") or ""
    if seen > now or seen < news["oldest"]:
        return False
    if news["joined"] and seen > news["joined"]:
        return True
    return in_window(item, first_day(news["start"]), now[:10])


def digest_window(db, subscriber_id: int | None, config, now: str, frequency: str = "weekly"):
    """The period of a subscriber's next digest (None = the public issue): (period_start, is_first, due)."""
    days = FREQUENCY_DAYS.get(frequency) or period_days(config)
    last = store.last_digest(db, subscriber_id)
    if last is None:
        return iso_before(days * DAY, now), True, True
    due = is_due(local_day(last["period_end"]), local_day(now), days, schedule_weekday(config))
    return last["period_end"], False, due
