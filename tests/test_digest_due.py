"""The due rule: a digest is due on its schedule day, never twice the same day.

Every case runs on the store's clock (SPSBOT_NOW), through ``build_digests`` on a real database.
2026-11-17 is a Tuesday and 2026-11-23 the next Monday.
"""

from datetime import date

import pytest

from bot.config import ConfigError, load_config
from bot.digest.builder import build_digests
from bot.digest.schedule import is_due
from bot.digest.subscribers import add_subscriber
from digest_support import paper, seed

TUESDAY = "2026-11-17T14:30:00+00:00"
MONDAY = "2026-11-23T06:15:00+00:00"


@pytest.fixture
def config():
    return load_config()


def _built_on(db, config, now, monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", now)
    result = build_digests(db, config)
    db.execute("update deliveries set status = 'sent' where status = 'pending'")  # as if sent at once
    db.conn.commit()
    return result


def test_a_monday_cron_sends_on_the_first_monday_after_a_tuesday_manual_run(db, config, monkeypatch):
    seed(db, [paper(1, "Tuesday paper", date="2026-11-16")], now=TUESDAY)
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    assert len(_built_on(db, config, TUESDAY, monkeypatch).built) == 1   # the maintainer's manual run
    seed(db, [paper(2, "Friday paper", date="2026-11-20")], now="2026-11-20T09:00:00+00:00")
    monday = _built_on(db, config, MONDAY, monkeypatch)                  # six days later: the cron run
    assert len(monday.built) == 1, "the first scheduled Monday must send"
    data = db.execute("select period_start, period_end, item_count from digests where subscriber_id = 1 "
                      "order by id").fetchall()
    assert data[1] == (TUESDAY, MONDAY, 1)  # the period is what was unsent since the manual run
    again = _built_on(db, config, "2026-11-23T18:00:00+00:00", monkeypatch)  # a re-run the same day
    assert (again.built, again.skipped) == ([], 1)


def test_a_daily_cron_sends_weekly_subscribers_one_digest_a_week(db, config, monkeypatch):
    add_subscriber(db, "weekly@example.org", valid_themes=config.theme_names, send_empty=True)
    add_subscriber(db, "daily@example.org", valid_themes=config.theme_names, send_empty=True, frequency="daily")
    sent = {"weekly@example.org": [], "daily@example.org": []}
    for day in range(16, 31):  # Monday 16 Nov … Monday 30 Nov
        now = f"2026-11-{day:02d}T06:15:00+00:00"
        for digest_id in _built_on(db, config, now, monkeypatch).built:
            email = db.execute("select s.email from digests d join subscribers s on s.id = d.subscriber_id "
                               "where d.id = ?", [digest_id]).fetchone()[0]
            sent[email].append(day)
    assert sent["weekly@example.org"] == [16, 23, 30]
    assert sent["daily@example.org"] == list(range(16, 31))


def test_a_mid_week_run_is_not_a_schedule_day(db, config, monkeypatch):
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names, send_empty=True)
    assert len(_built_on(db, config, MONDAY, monkeypatch).built) == 1
    # Wednesday: two days after the last digest, not the schedule day: not due …
    assert _built_on(db, config, "2026-11-25T06:15:00+00:00", monkeypatch).skipped == 1
    # … and with schedule_day = "wednesday" the Wednesday is the one that sends.
    wednesday = load_config(_profile(db, 'schedule_day = "Wednesday"'))
    assert len(_built_on(db, wednesday, "2026-11-25T06:15:00+00:00", monkeypatch).built) == 1


def _profile(db, line: str):
    path = db.conn.execute("pragma database_list").fetchone()[2] + ".toml"
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"[digest]\n{line}\n")
    return path


def test_schedule_day_must_be_a_weekday(db):
    with pytest.raises(ConfigError, match="'schedule_day' in \\[digest\\] must be a weekday.*'mon'"):
        load_config(_profile(db, 'schedule_day = "mon"'))


@pytest.mark.parametrize("last, today, days, due", [
    (date(2026, 11, 17), date(2026, 11, 23), 7, True),    # Tuesday → Monday (schedule day)
    (date(2026, 11, 22), date(2026, 11, 23), 7, True),    # Sunday → Monday: what was unsent
    (date(2026, 11, 23), date(2026, 11, 23), 7, False),   # the same day: never twice
    (date(2026, 11, 16), date(2026, 11, 22), 7, False),   # Monday → Sunday: six days, no schedule day
    (date(2026, 11, 15), date(2026, 11, 22), 7, True),    # seven days on any day (a Sunday cron)
    (date(2026, 11, 2), date(2026, 11, 23), 30, False),   # monthly, 21 days
    (date(2026, 10, 26), date(2026, 11, 23), 30, True),   # monthly, 28 days, on the schedule day
    (date(2026, 11, 22), date(2026, 11, 23), 1, True),    # daily
])
def test_is_due(last, today, days, due):
    assert is_due(last, today, days, 0) is due
