"""`spsbot trials` and `spsbot changes` on a real database file, via CliRunner."""

import json

from click.testing import CliRunner

from bot.cli import cli
from bot.fetch import clinicaltrials as fetch_ctgov
from bot.replay import LocalServer
from bot.replay.ctgov import DEMO_CHANGED_TRIAL, demo_responder
from bot.store import open_db
from ctgov_helpers import make_config


def _demo_database(tmp_path, monkeypatch):
    """The demo flow: version 1 of the bundled trials, then the later version, over real HTTP."""
    db_path = tmp_path / "cli.db"
    db = open_db(db_path)
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-16T06:00:00+00:00")
    with LocalServer(demo_responder(1)) as server:
        config = make_config(tmp_path, server.url, condition="Stiff-Person Syndrome", terms=["stiff man"])
        first = fetch_ctgov.run(db, config).counts
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-23T06:00:00+00:00")
    with LocalServer(demo_responder(2, update_date="2026-11-21")) as server:
        config = make_config(tmp_path, server.url, condition="Stiff-Person Syndrome", terms=["stiff man"])
        second = fetch_ctgov.run(db, config).counts
        since = server.requests[0].param("filter.advanced")
    db.close()
    return db_path, first, second, since


def test_demo_data_flow_shows_one_status_change(tmp_path, monkeypatch, env_isolated):
    db_path, first, second, since = _demo_database(tmp_path, monkeypatch)
    assert first["fetched"] == 6 and first["new"] == 6 and first["changes"] == 0
    assert since == "AREA[LastUpdatePostDate]RANGE[2026-11-13,MAX]"
    assert second["fetched"] == 1 and second["changes"] == 2  # status + results posted

    runner = CliRunner()
    result = runner.invoke(cli, ["--db", str(db_path), "changes", "--since", "2026-11-20", "--json"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines()]
    assert sorted((e["nct_id"], e["field"], e["old"], e["new"]) for e in events) == [
        (DEMO_CHANGED_TRIAL, "overall_status", "UNKNOWN", "COMPLETED"),
        (DEMO_CHANGED_TRIAL, "results_posted", "", "2026-11-21 (actual)"),
    ]
    assert all(e["version_date"] == "2026-11-21" and e["title"].startswith("Efficacy and Mechanism") for e in events)

    text = runner.invoke(cli, ["--db", str(db_path), "changes", "--since", "2026-11-20"])
    assert "NCT03829826 overall_status: UNKNOWN → COMPLETED" in text.output
    none = runner.invoke(cli, ["--db", str(db_path), "changes", "--since", "2026-11-24"])
    assert none.exit_code == 0 and "No trial changes since 2026-11-24" in none.output

    listing = runner.invoke(cli, ["--db", str(db_path), "trials"])
    assert listing.exit_code == 0
    lines = listing.output.splitlines()
    assert lines[0].startswith("NCT") and len(lines) == 1 + 6
    assert lines[1].split()[:2] == ["NCT03829826", "COMPLETED"] and "results_posted" in lines[1]
    assert any(line.split()[:2] == ["NCT03749096", "WITHDRAWN"] and "none (first seen 2026-11-16)" in line
               for line in lines)

    as_json = runner.invoke(cli, ["--db", str(db_path), "trials", "--json"])
    rows = [json.loads(line) for line in as_json.output.splitlines()]
    assert {r["nct_id"]: r["change_count"] for r in rows}[DEMO_CHANGED_TRIAL] == 2


def test_changes_refuses_a_bad_date(tmp_path, env_isolated):
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "x.db"), "changes", "--since", "last week"])
    assert result.exit_code == 1
    assert "--since must be a date like 2026-11-01" in result.output


def test_trials_on_an_empty_database(tmp_path, env_isolated):
    open_db(tmp_path / "empty.db").close()  # a missing one is refused (tests/test_missing_database.py)
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "empty.db"), "trials"])
    assert result.exit_code == 0 and "No trials stored yet" in result.output


def test_changes_default_window_is_the_last_7_days_of_the_store_clock(tmp_path, monkeypatch, env_isolated):
    db_path, *_ = _demo_database(tmp_path, monkeypatch)     # changes detected 2026-11-23
    runner = CliRunner()
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-25T06:00:00+00:00")
    recent = runner.invoke(cli, ["--db", str(db_path), "changes"])
    assert "NCT03829826 overall_status: UNKNOWN → COMPLETED" in recent.output
    monkeypatch.setenv("SPSBOT_NOW", "2026-12-31T06:00:00+00:00")
    later = runner.invoke(cli, ["--db", str(db_path), "changes"])
    assert "No trial changes since 2026-12-24" in later.output
