"""The digest commands and ``spsbot run`` end to end: real database file, real SMTP server."""

import email
import os
from email import policy

import pytest
from click.testing import CliRunner

import bot.fetch
from bot.cli import cli
from bot.cli.digesting import EXIT_CODES
from bot.pipeline import RunResult
from bot.fetch import FetchResult, SourceResult
from bot.store import open_db
from conftest import SmtpServer
from digest_support import offline_cli_store, paper

LATER = "2026-11-30T06:00:00+00:00"


@pytest.fixture
def setup(env_isolated, monkeypatch):
    """A database with two subscribers and this week's papers; no source enabled (no network)."""
    offline_cli_store(env_isolated, monkeypatch, [paper(1, "IVIG in SPS"),
                                                  paper(2, "Baclofen in SPS", themes={"symptomatic": 0.9})]).close()
    runner = CliRunner()
    for args in (["ann@example.org", "--name", "Ann"], ["bob@example.org", "--themes", "symptomatic"]):
        assert runner.invoke(cli, ["subscribers", "add", *args]).exit_code == 0
    return runner


def test_run_sends_once_then_reports_nothing_new(setup, monkeypatch):
    with SmtpServer() as server:
        monkeypatch.setenv("SPSBOT_SMTP_URL", server.url)
        first = setup.invoke(cli, ["run", "--no-rank"])
        assert first.exit_code == 0, first.output
        assert sorted(server.recipients()) == ["ann@example.org", "bob@example.org"]
        again = setup.invoke(cli, ["run", "--no-rank"])
        assert again.exit_code == 3, again.output
        monkeypatch.setenv("SPSBOT_NOW", LATER)  # a week later, nothing new either
        assert setup.invoke(cli, ["run", "--no-fetch", "--no-rank"]).exit_code == 3
        assert len(server.messages) == 2
    bob = next(m for m in server.messages if m["To"] == "bob@example.org")
    assert "Baclofen in SPS" in bob.get_body(("plain",)).get_content()
    assert "IVIG in SPS" not in bob.get_body(("plain",)).get_content()
    db = open_db(os.environ["SPSBOT_DB"])
    statuses = [r["status"] for r in db.query("select status from runs where command = 'run' order by id")]
    assert statuses == ["ok", "nothing_new", "nothing_new"]


def test_run_fails_with_exit_1_when_smtp_is_unreachable_and_retries_later(setup, monkeypatch):
    with SmtpServer() as server:
        dead = f"smtp://127.0.0.1:{server.port}"
    monkeypatch.setenv("SPSBOT_SMTP_URL", dead)  # the server is stopped: connection refused
    failed = setup.invoke(cli, ["run", "--no-fetch", "--no-rank"])
    assert failed.exit_code == 1 and "cannot connect" in failed.output
    db = open_db(os.environ["SPSBOT_DB"])
    run = list(db.query("select status, error from runs where command = 'run'"))[-1]
    assert run["status"] == "failed" and "cannot connect" in run["error"]
    db.close()
    with SmtpServer() as server:
        monkeypatch.setenv("SPSBOT_SMTP_URL", server.url)
        retried = setup.invoke(cli, ["run", "--no-fetch", "--no-rank"])
        assert retried.exit_code == 0, retried.output
        assert len(server.messages) == 2  # the digests queued by the failed run, each once


def test_run_partial_fetch_exits_4(setup, monkeypatch):
    monkeypatch.setattr(bot.fetch, "fetch_all", lambda db, config, **kw: FetchResult(
        {"pubmed": SourceResult(failure="SourceError: HTTP 500"), "clinicaltrials": SourceResult({"new": 0})}))
    with SmtpServer() as server:
        monkeypatch.setenv("SPSBOT_SMTP_URL", server.url)
        result = setup.invoke(cli, ["run", "--no-rank"])
        assert result.exit_code == 4, result.output
        assert len(server.messages) == 2  # the rest still went out


def test_exit_code_contract():
    def code(**fields):
        return EXIT_CODES[RunResult(**fields).status]
    assert code(sent=3) == 0 and code(sent=0) == 3 and code(fetch_status="skipped") == 3
    assert code(fetch_status="partial") == 4 and code(fetch_status="partial", sent=2) == 4
    assert code(fetch_status="failed") == 1 and code(sent=2, error="SMTP refused") == 1


def test_preview_writes_html_and_eml(setup, tmp_path):
    out = tmp_path / "preview"
    result = setup.invoke(cli, ["digest", "preview", "--to", "bob@example.org", "--out", str(out)])
    assert result.exit_code == 0, result.output
    [html] = out.glob("*.html")
    [eml] = out.glob("*.eml")
    assert "Baclofen in SPS" in html.read_text(encoding="utf-8")
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"] == "bob@example.org" and message.get_content_type() == "multipart/alternative"
    assert setup.invoke(cli, ["digest", "preview", "--to", "not an address", "--out", str(out)]).exit_code == 1


def test_build_then_send_dry_run_then_send(setup, monkeypatch):
    with SmtpServer() as server:
        monkeypatch.setenv("SPSBOT_SMTP_URL", server.url)
        built = setup.invoke(cli, ["digest", "build"])
        assert built.exit_code == 0 and "queued 2 digest(s)" in built.output
        dry = setup.invoke(cli, ["digest", "send", "--dry-run", "--to", "ann@example.org"])
        assert dry.exit_code == 0 and "would send to ann@example.org" in dry.output and "bob@" not in dry.output
        assert server.messages == []
        sent = setup.invoke(cli, ["digest", "send", "--to", "ann@example.org"])
        assert "sent 1," in sent.output and server.recipients() == ["ann@example.org"]
        rest = setup.invoke(cli, ["digest", "send"])
        assert "sent 1," in rest.output and sorted(server.recipients()) == ["ann@example.org", "bob@example.org"]


def test_run_refuses_while_another_writer_holds_the_lock(setup, monkeypatch):
    from bot.lock import db_lock
    with SmtpServer() as server:
        monkeypatch.setenv("SPSBOT_SMTP_URL", server.url)
        with db_lock(os.environ["SPSBOT_DB"], "run"):
            busy = setup.invoke(cli, ["run", "--no-fetch", "--no-rank"])
            assert busy.exit_code == 1 and "another spsbot" in busy.output
            assert setup.invoke(cli, ["digest", "send"]).exit_code == 1
        assert server.messages == []
        assert setup.invoke(cli, ["run", "--no-fetch", "--no-rank"]).exit_code == 0


def test_a_maintainer_adds_a_plain_style_subscriber(setup, env_isolated):
    assert setup.invoke(cli, ["subscribers", "add", "pat@example.org", "--style", "plain"]).exit_code == 0
    bad = setup.invoke(cli, ["subscribers", "add", "pat@example.org", "--style", "fancy"])
    assert bad.exit_code == 2 and "fancy" in bad.output
    db = open_db(env_isolated / "cli.db")
    assert db.execute("select email, style from subscribers order by id").fetchall() == [
        ("ann@example.org", None), ("bob@example.org", None), ("pat@example.org", "plain")]
