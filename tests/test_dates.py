"""bot.dates: the one parser for stored ISO timestamps and the command line's --since/--until."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.dates import DateError, parse_day, parse_day_option, parse_timestamp
from bot.errors import UserError
from bot.store import open_db


@pytest.mark.parametrize("text, expected", [
    ("2026-11-21T06:00:00+00:00", datetime(2026, 11, 21, 6, tzinfo=timezone.utc)),
    ("2026-11-21T06:00:00Z", datetime(2026, 11, 21, 6, tzinfo=timezone.utc)),
    ("2026-11-21T01:00:00-05:00", datetime(2026, 11, 21, 1, tzinfo=timezone(timedelta(hours=-5)))),
    ("2026-11-21T06:00:00", datetime(2026, 11, 21, 6, tzinfo=timezone.utc)),       # no offset = UTC
    ("2026-11-21", datetime(2026, 11, 21, tzinfo=timezone.utc)),                   # a date = midnight UTC
    (" 2026-11-21T06:00:00.123456+00:00 ", datetime(2026, 11, 21, 6, 0, 0, 123456, tzinfo=timezone.utc)),
])
def test_timestamps_in_every_form_the_store_and_sources_write(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected and parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-13-01", "2026-02-30T00:00:00", "21/11/2026"])
def test_a_timestamp_that_is_not_iso_is_refused(bad):
    with pytest.raises(ValueError):
        parse_timestamp(bad)


def test_the_day_of_a_timestamp_is_the_day_as_written():
    assert parse_day("2026-11-21T23:30:00-05:00") == date(2026, 11, 21)   # not converted to UTC (the 22nd)
    assert parse_day("2026-11-21") == date(2026, 11, 21)
    with pytest.raises(ValueError):
        parse_day("2026-11")


@pytest.mark.parametrize("value, end, expected", [
    ("2023", False, "2023-01-01"), ("2023", True, "2023-12-31"),
    ("2023-5", False, "2023-05-01"), ("2023-02", True, "2023-02-31"),    # "-31" sorts after any real day
    ("2023/05/07", False, "2023-05-07"), ("2023-05-07", True, "2023-05-07"),
    ("2026-11-01T05:00:00Z", False, "2026-11-01T05:00:00+00:00"),        # `changes --since` kept the time
    ("2026-11-01T05:00:00", False, "2026-11-01T05:00:00"),
    (None, False, None), ("", True, None),
])
def test_day_options_accept_every_form_search_and_changes_accepted(value, end, expected):
    assert parse_day_option(value, end=end) == expected


@pytest.mark.parametrize("bad", ["yesterday", "2023-13", "23", "2023-01-01; drop", "2023-02-30", "last week"])
def test_a_bad_day_option_is_a_one_line_user_error_naming_the_option(bad):
    with pytest.raises(DateError) as error:
        parse_day_option(bad, "--until")
    assert isinstance(error.value, UserError) and isinstance(error.value, ValueError)
    line = str(error.value)
    assert line.startswith("--until must be a date like 2026-11-01") and repr(bad) in line and "\n" not in line


def test_search_changes_and_feedback_share_the_since_parser(tmp_path):
    db = str(tmp_path / "x.db")
    open_db(db).close()  # the mistake is the date, not a missing database
    for command in (["search", "x", "--no-semantic", "--since", "2026-02-30"], ["changes", "--since", "2026-02-30"],
                    ["feedback", "list", "--since", "2026-02-30"]):
        result = CliRunner().invoke(cli, ["--db", db, *command])
        assert result.exit_code == 1 and "Traceback" not in result.output, (command, result.output)
        assert result.stderr == ("Error: --since must be a date like 2026-11-01 (or 2026-11, 2026, an ISO "
                                 "timestamp), got '2026-02-30': not a date\n"), command
    # The forms each of them accepted before are accepted by all three.
    for since in ("2026", "2026-11", "2026/11/01", "2026-11-01T05:00:00Z"):
        for command in (["search", "x", "--no-semantic"], ["changes"], ["feedback", "list"]):
            result = CliRunner().invoke(cli, ["--db", db, *command, "--since", since])
            assert result.exit_code == 0, (command, since, result.output)
