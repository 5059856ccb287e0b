"""`spsbot fetch` through the real console-script entry point (subprocesses)."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import clean_env, spsbot

from bot.replay import LocalServer, Response
from bot.replay.eutils import eutils_responder, load_articles


@pytest.fixture
def cli_env(env_isolated):
    return clean_env(env_isolated, SPSBOT_DB=env_isolated / "cli.db", SPSBOT_NOW="2026-11-20T08:00:00+00:00")


@pytest.fixture
def articles(fixtures):
    return load_articles(sorted(p.read_text(encoding="utf-8") for p in (fixtures / "pubmed").glob("efetch_*.xml")))


def test_fetch_pubmed_stores_what_the_server_serves(cli_env, env_isolated, articles):
    with LocalServer(eutils_responder(articles)) as server:
        cli_env["SPSBOT_EUTILS_URL"] = server.url + "/entrez/eutils"
        first = spsbot("fetch", "--source", "pubmed", env=cli_env, cwd=env_isolated)
        second = spsbot("fetch", "--source", "pubmed", env=cli_env, cwd=env_isolated)
        searches = [r for r in server.requests if r.path.endswith("esearch.fcgi")]
    assert first.returncode == 0, first.stderr
    assert "pubmed: fetched 34, new 34, updated 0, unchanged 0, errors 0 (2 requests)" in first.stdout
    assert second.returncode == 0 and "pubmed: fetched 0, new 0" in second.stdout
    # backfill, then the overlap on the create date; then the modified-records sweep (the query,
    # then retracted publications) over the last 14 days
    assert [s.param("term")[-27:] for s in searches[:2]] == [
        "1950/01/01:2026/11/20[crdt]", "2026/11/17:2026/11/20[crdt]"]
    assert [(s.param("datetype"), s.param("mindate")) for s in searches[2:]] == [("mdat", "2026/11/06")] * 2
    with sqlite3.connect(env_isolated / "cli.db") as conn:
        assert conn.execute("select count(*) from items where sources like '%pubmed%'").fetchone()[0] == 34
        assert conn.execute("select status from runs where source = 'pubmed' order by id").fetchall() == [
            ("ok",), ("ok",)]
    assert "INFO bot.fetch.pubmed: pubmed: batch 1: 34 records" in first.stderr   # plain log lines, no bar


def test_fetch_failure_exits_1_with_one_line_per_source(cli_env, env_isolated):
    with LocalServer(lambda request: Response(400, "Bad Request: unknown parameter", "text/plain")) as server:
        cli_env["SPSBOT_EUTILS_URL"] = server.url + "/entrez/eutils"
        result = spsbot("fetch", "--source", "pubmed", env=cli_env, cwd=env_isolated)
    assert result.returncode == 1
    assert "pubmed: FAILED: SourceError: pubmed" in result.stderr and "HTTP 400" in result.stderr
    assert "Traceback" not in result.stderr


def test_fetch_rejects_an_unknown_source(cli_env, env_isolated):
    result = spsbot("fetch", "--source", "arxiv", env=cli_env, cwd=env_isolated)
    assert result.returncode == 2 and "Invalid value for '--source'" in result.stderr


def test_fetch_exits_4_when_one_source_fails_and_another_works(cli_env, env_isolated, articles):
    refuse = LocalServer(lambda request: Response(400, "Bad Request", "text/plain"))
    with LocalServer(eutils_responder(articles)) as eutils, refuse as ctgov:
        cli_env["SPSBOT_EUTILS_URL"] = eutils.url + "/entrez/eutils"
        cli_env["SPSBOT_CTGOV_URL"] = ctgov.url + "/api/v2"
        result = spsbot("fetch", "--source", "pubmed", "--source", "clinicaltrials", env=cli_env, cwd=env_isolated)
    assert result.returncode == 4, result.stderr
    assert "pubmed: fetched 34, new 34" in result.stdout and "clinicaltrials: FAILED" in result.stderr
