"""Faults in the store itself: a database from a newer spsbot, a corrupted file (``status`` says
what ``PRAGMA quick_check`` found; ``run`` and ``digest send`` send nothing from it), and a
search query long enough to pin a core (FTS5's cost grows with the square of its terms)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.store import open_db
from conftest import SmtpServer
from digest_support import NOW
from faults.helpers import delivery_statuses, queue_digests

READERS = ("ann@example.org", "bob@example.org")


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def test_a_database_from_a_newer_spsbot_is_refused_with_one_line(tmp_path, monkeypatch):
    db_path = tmp_path / "spsbot.db"
    db = open_db(db_path)
    with db.atomic():
        db["_migrations"].insert({"name": "099_from_the_future", "applied_at": NOW})
    db.close()
    monkeypatch.setenv("SPSBOT_DB", str(db_path))
    for command in (["status"], ["search", "x", "--no-semantic"], ["run", "--no-fetch"]):
        result = CliRunner().invoke(cli, command)
        line = _one_error_line(result.output)
        assert result.exit_code == 1 and "written by a newer spsbot" in line and "099_from_the_future" in line
    print(f"FAULT LINE [newer database]: {line}")


def _corrupt_an_index(db_path) -> None:
    """Overwrite the page-type byte of one index's root page: the file opens, most queries still
    work, but its b-tree is damaged (what a bad disk sector or a half-copied backup does)."""
    conn = sqlite3.connect(db_path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'idx_items_lower_doi'").fetchone()[0]
    conn.close()
    with open(db_path, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\x00")


@pytest.fixture
def corrupted(tmp_path, monkeypatch):
    db_path = tmp_path / "spsbot.db"
    queue_digests(db_path, READERS)          # two digests pending in the outbox
    _corrupt_an_index(db_path)
    monkeypatch.setenv("SPSBOT_DB", str(db_path))
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    return db_path


def test_status_runs_quick_check_and_says_the_database_is_damaged(corrupted):
    text = CliRunner().invoke(cli, ["status"])
    as_json = CliRunner().invoke(cli, ["status", "--json"])
    assert text.exit_code == 1 and as_json.exit_code == 1
    line = next(line for line in text.output.splitlines() if line.startswith("Database:"))
    print(f"FAULT LINE [corrupted database, status]: {line}")
    assert "PRAGMA quick_check FAILED" in line
    integrity = json.loads(as_json.output)["integrity"]
    assert integrity["check"] == "PRAGMA quick_check" and integrity["ok"] is False and integrity["result"] != "ok"


def test_run_and_digest_send_refuse_to_send_from_a_damaged_database(corrupted, monkeypatch):
    with SmtpServer() as server:
        monkeypatch.setenv("SPSBOT_SMTP_URL", server.url)
        run = CliRunner().invoke(cli, ["run", "--no-fetch", "--no-rank"])
        send = CliRunner().invoke(cli, ["digest", "send"])
        assert server.messages == [] and server.handler.connections == 0
    assert run.exit_code == 1 and send.exit_code == 1
    line = _one_error_line(send.output)
    print(f"FAULT LINE [corrupted database, digest send]: {line}")
    assert "not sending: the database fails PRAGMA quick_check" in line
    assert delivery_statuses(corrupted) == {r: "pending" for r in READERS}   # kept for after the repair


def test_healthy_status_says_quick_check_passed(tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_DB", str(tmp_path / "spsbot.db"))
    open_db(tmp_path / "spsbot.db").close()
    result = CliRunner().invoke(cli, ["status"])
    assert "Database: PRAGMA quick_check ok" in result.output


@pytest.mark.parametrize("query", ["syndrome " * 5000, " OR ".join(["stiff", "person"] * 40)],
                         ids=["5,000 words", "80 OR'ed words"])
def test_a_huge_search_query_is_refused_at_once(tmp_path, monkeypatch, query):
    monkeypatch.setenv("SPSBOT_DB", str(tmp_path / "spsbot.db"))
    open_db(tmp_path / "spsbot.db").close()
    result = CliRunner().invoke(cli, ["search", query, "--no-semantic"])
    line = _one_error_line(result.output)
    print(f"FAULT LINE [search query of {len(query):,} characters]: {line}")
    assert result.exit_code == 1 and "the query is too long" in line
