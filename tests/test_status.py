"""``spsbot status``: last runs, store, outbox, subscribers, staleness with a faked clock."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.cli.base import EXIT_STALE
from bot.config import load_config
from bot.status import collect_status, format_status
from bot.store import recorded_run, save_items


def _run(db, monkeypatch, source, when, *, fail=False, counts=None, status=None):
    """A real recorded fetch run of ``source`` at a faked time."""
    monkeypatch.setenv("SPSBOT_NOW", when)
    try:
        with recorded_run(db, "fetch", source) as run:
            run.counts.update(counts or {})
            if status:
                run.status = status
            if fail:
                raise RuntimeError("pubmed: HTTP 500 from esearch.fcgi after 4 tries")
    except RuntimeError:
        pass


@pytest.fixture
def healthy(db, monkeypatch):
    _run(db, monkeypatch, "pubmed", "2026-11-01T03:00:00+00:00", counts={"fetched": 5, "new": 3, "updated": 1})
    _run(db, monkeypatch, "clinicaltrials", "2026-11-01T03:05:00+00:00", counts={"fetched": 2, "new": 0,
                                                                                   "updated": 2})
    save_items(db, [{"kind": "paper", "pmid": "1", "title": "A paper", "source": "pubmed"},
                    {"kind": "paper", "pmid": "2", "title": "Another paper", "source": "pubmed"},
                    {"kind": "trial", "nct_id": "NCT00000001", "title": "A trial", "source": "ctgov"}],
               now="2026-11-01T03:01:00+00:00")
    db["subscribers"].insert_all([{"email": "a@example.org", "status": "active"},
                                  {"email": "b@example.org", "status": "active"},
                                  {"email": "c@example.org", "status": "unsubscribed"}])
    db["deliveries"].insert_all([{"digest_id": 1, "subscriber_id": 1, "status": "pending"},
                                 {"digest_id": 1, "subscriber_id": 2, "status": "sent"},
                                 {"digest_id": 1, "subscriber_id": 3, "status": "failed"}])
    return db


def test_healthy_store_within_twice_the_schedule(healthy):
    report = collect_status(healthy, load_config(), now="2026-11-14T00:00:00+00:00")
    assert report["stale"] is False and report["warnings"] == []
    pubmed = next(s for s in report["sources"] if s["source"] == "pubmed")
    assert pubmed["last_run"]["status"] == "ok"
    assert (pubmed["last_run"]["new"], pubmed["last_run"]["updated"]) == (3, 1)
    assert pubmed["last_success_age_days"] == pytest.approx(12.875, abs=0.01)
    assert pubmed["newest_item_seen"] == "2026-11-01T03:01:00+00:00"
    ctgov = next(s for s in report["sources"] if s["source"] == "clinicaltrials")
    assert ctgov["newest_item_seen"] == "2026-11-01T03:01:00+00:00"  # items tagged "ctgov"
    assert report["items"] == {"paper": 2, "trial": 1}
    assert (report["pending_deliveries"], report["failed_deliveries"]) == (1, 1)
    assert report["subscribers"] == {"active": 2, "unsubscribed": 1}
    text = "\n".join(format_status(report))
    assert "WARNING" not in text and "Store: 2 papers, 1 trials" in text


def test_whole_stage_commands_show_their_last_run(healthy, monkeypatch):
    for when, command, fail in (("2026-11-01T04:00:00+00:00", "rank", False),
                                ("2026-11-08T04:00:00+00:00", "rank", True),
                                ("2026-11-08T05:00:00+00:00", "digest", False)):
        monkeypatch.setenv("SPSBOT_NOW", when)
        try:
            with recorded_run(healthy, command):
                if fail:
                    raise ValueError("model not found")
        except ValueError:
            pass
    report = collect_status(healthy, load_config(), now="2026-11-09T00:00:00+00:00")
    assert [(r["command"], r["status"]) for r in report["commands"]] == [("digest", "ok"), ("rank", "failed")]
    lines = format_status(report)
    assert "Last rank: 2026-11-08T04:00:00+00:00 failed (ValueError: model not found)" in lines


def test_stale_after_twice_the_period_with_faked_clock(healthy, monkeypatch):
    # a failure later does not count as success: pubmed last succeeded on Nov 1
    _run(healthy, monkeypatch, "pubmed", "2026-11-08T03:00:00+00:00", fail=True)
    report = collect_status(healthy, load_config(), now="2026-11-15T04:00:00+00:00")
    assert report["stale"] is True
    assert [w.split()[1] for w in report["warnings"]] == ["pubmed", "clinicaltrials"]
    pubmed = next(s for s in report["sources"] if s["source"] == "pubmed")
    assert pubmed["last_run"]["status"] == "failed" and "HTTP 500" in pubmed["last_run"]["error"]
    lines = format_status(report)
    assert any(line.startswith("WARNING: source pubmed last succeeded 14.0 days ago") for line in lines)
    assert any("error: RuntimeError: pubmed: HTTP 500" in line for line in lines)


def test_period_comes_from_the_config(healthy, tmp_path):
    config_file = tmp_path / "monthly.toml"
    config_file.write_text("[digest]\nperiod_days = 30\n", encoding="utf-8")
    report = collect_status(healthy, load_config(config_file), now="2026-11-30T00:00:00+00:00")
    assert report["stale_after_days"] == 60 and report["stale"] is False


def test_nothing_new_counts_as_success(db, monkeypatch):
    _run(db, monkeypatch, "pubmed", "2026-11-20T00:00:00+00:00", status="nothing_new")
    report = collect_status(db, None, now="2026-11-21T00:00:00+00:00")
    assert [s["source"] for s in report["sources"]] == ["pubmed"]
    assert report["stale"] is False


def test_never_run_is_stale(db):
    report = collect_status(db, load_config(), now="2026-11-21T00:00:00+00:00")
    assert report["stale"] is True
    assert {s["source"] for s in report["sources"]} == {"pubmed", "clinicaltrials"}
    assert all("has never succeeded" in w for w in report["warnings"])


def test_cli_exit_codes_and_json(env_isolated, monkeypatch):
    from bot.store import open_db
    db = open_db(env_isolated / "cli.db")
    for source in ("pubmed", "clinicaltrials"):
        _run(db, monkeypatch, source, "2026-11-01T03:00:00+00:00", counts={"new": 1})
    db.close()
    runner = CliRunner()
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-10T00:00:00+00:00")
    ok = runner.invoke(cli, ["status"])
    assert ok.exit_code == 0, ok.output
    assert "OK: every source succeeded within the last 14 days" in ok.output

    monkeypatch.setenv("SPSBOT_NOW", "2026-11-16T00:00:00+00:00")
    stale = runner.invoke(cli, ["status"])
    assert stale.exit_code == EXIT_STALE
    assert stale.output.count("WARNING: source") == 2
    as_json = runner.invoke(cli, ["status", "--json"])
    assert as_json.exit_code == EXIT_STALE
    data = json.loads(as_json.output)
    assert data["stale"] is True and data["now"] == "2026-11-16T00:00:00+00:00"
