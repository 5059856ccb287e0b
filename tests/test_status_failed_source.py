"""``spsbot status`` after a run in which one source failed: not OK, its own exit code (9), a
WARNING line that keeps the failure's cause (refused, DNS, TLS, HTTP status) and says what to do
next — against real servers on 127.0.0.1 (issue 25)."""

from __future__ import annotations

import socket

import pytest
import requests
import urllib3
from click.testing import CliRunner

from bot.cli import cli
from bot.cli.base import EXIT_SOURCE_FAILED
from bot.config import load_config
from bot.errors import shorten
from bot.fetch import fetch_all
from bot.replay import LocalServer
from bot.replay.ctgov import demo_responder
from bot.replay.eutils import eutils_responder
from bot.sources import clinicaltrials, pubmed
from bot.sources.http import HttpClient, SourceError, _cause
from bot.store import open_db
from conftest import free_port
from maintainer_kit import newest_demo_articles


def _fetch_with_pubmed_at(db_path, eutils_url: str, expect: str = "partial") -> dict:
    """One fetch: PubMed at ``eutils_url``, ClinicalTrials.gov a local replay (working)."""
    with LocalServer(demo_responder(1)) as ctgov:
        config = load_config(env={"SPSBOT_EUTILS_URL": eutils_url, "SPSBOT_CTGOV_URL": ctgov.url})
        db = open_db(db_path)
        fast = {"min_interval": 0, "backoff": 0, "max_retries": 1}
        result = fetch_all(db, config, ["pubmed", "clinicaltrials"],
                           pubmed={"client": pubmed.configured_client(config, **fast)},
                           clinicaltrials={"client": clinicaltrials.configured_client(config, **fast)})
        db.close()
    assert result.status == expect, result.errors
    return result.errors


def test_a_source_that_failed_last_makes_status_fail_with_the_cause_and_what_to_do(env_isolated):
    with LocalServer(eutils_responder(newest_demo_articles(3))) as eutils:  # last week: both worked
        _fetch_with_pubmed_at(env_isolated / "cli.db", eutils.url + "/entrez/eutils", expect="ok")
    assert CliRunner().invoke(cli, ["status"]).exit_code == 0
    errors = _fetch_with_pubmed_at(env_isolated / "cli.db", f"http://127.0.0.1:{free_port()}/entrez/eutils")
    assert "Connection refused" in errors["pubmed"] and "Max retries" not in errors["pubmed"]
    status = CliRunner().invoke(cli, ["status"])
    assert status.exit_code == EXIT_SOURCE_FAILED, status.output
    assert "OK:" not in status.output
    warning = next(line for line in status.output.splitlines() if line.startswith("WARNING: source pubmed"))
    assert "Connection refused" in warning and "delayed, not lost" in warning
    assert warning.endswith("the next run fetches what was missed")
    assert "`spsbot -v fetch --source pubmed`" in warning
    error_line = next(line for line in status.output.splitlines() if line.strip().startswith("error:"))
    assert "Connection refused (gave up after 2 attempts)" in error_line
    report = CliRunner().invoke(cli, ["status", "--json"])
    assert '"source_failed"' in report.output and report.exit_code == EXIT_SOURCE_FAILED


def test_a_tls_failure_names_tls(env_isolated):
    """https:// to a server that speaks plain HTTP: the TLS handshake fails, and the line says so."""
    with LocalServer(demo_responder(1)) as plain:
        https = plain.url.replace("http://", "https://")
        errors = _fetch_with_pubmed_at(env_isolated / "cli.db", https + "/entrez/eutils")
    assert "TLS failed" in errors["pubmed"] and "SSL" in errors["pubmed"]


def test_an_http_status_is_kept(env_isolated):
    from bot.replay import Response
    with LocalServer(lambda request: Response(503, "down for maintenance", "text/plain")) as down:
        errors = _fetch_with_pubmed_at(env_isolated / "cli.db", down.url + "/entrez/eutils")
    assert "HTTP 503" in errors["pubmed"]


def test_a_dns_failure_keeps_the_host_it_could_not_resolve():
    """requests' real exception chain for a name that does not resolve (built here: no DNS query)."""
    pool = urllib3.HTTPSConnectionPool("eutils.ncbi.nlm.nih.gov", 443)
    connection = urllib3.connection.HTTPSConnection("eutils.ncbi.nlm.nih.gov", 443)
    resolve = urllib3.exceptions.NameResolutionError("eutils.ncbi.nlm.nih.gov", connection,
                                                     socket.gaierror(-2, "Name or service not known"))
    chain = requests.ConnectionError(urllib3.exceptions.MaxRetryError(
        pool, "/entrez/eutils/esearch.fcgi?db=pubmed&term=" + "x" * 300, resolve))
    assert _cause(chain) == ("Failed to resolve 'eutils.ncbi.nlm.nih.gov' ([Errno -2] Name or service not known)")


def test_a_refused_connection_through_the_client():
    client = HttpClient(f"http://127.0.0.1:{free_port()}/entrez/eutils", name="pubmed", min_interval=0,
                        backoff=0, max_retries=0)
    with pytest.raises(SourceError) as error:
        client.request("esearch.fcgi")
    assert str(error.value).endswith("connection failed: [Errno 111] Connection refused (gave up after 1 attempt)")


@pytest.mark.parametrize("limit", [60, 90, 120, 200])
def test_shortening_cuts_whole_words_in_the_middle_and_keeps_the_cause(limit):
    line = ("pubmed https://eutils.ncbi.nlm.nih.gov/entrez/eutils/esearch.fcgi: connection failed: Failed to "
            "resolve 'eutils.ncbi.nlm.nih.gov' ([Errno -2] Name or service not known) (gave up after 5 attempts)")
    short = shorten(line, limit)
    assert len(short) <= limit and short.startswith("pubmed ") and short.endswith("(gave up after 5 attempts)")
    words = set(line.split())
    assert all(word in words for word in short.split() if word != "…")  # no word cut in two
    if limit >= 120:
        assert "Failed to resolve 'eutils.ncbi.nlm.nih.gov'" in short


def test_every_problem_line_ends_with_what_to_do_next(db):
    """Every kind of problem at once: each WARNING/ERROR line names a command or an action last."""
    import json as _json
    from bot.status import collect_status, format_status
    rows = [("fetch", "pubmed", "2026-11-20T06:00:00+00:00", "ok", None),
            ("fetch", "pubmed", "2026-11-21T05:00:00+00:00", "failed", "SourceError: pubmed: HTTP 503 (gave up)"),
            ("fetch", "feeds", "2026-11-01T05:00:00+00:00", "failed", "SourceError: feeds: timed out"),
            ("run", None, "2026-11-21T05:00:00+00:00", "failed", "SendError: cannot connect to smtp://x:25")]
    for command, source, started, status, error in rows:
        db["runs"].insert({"command": command, "source": source, "started": started, "finished": started,
                           "status": status, "counts": _json.dumps({}), "error": error})
    db["deliveries"].insert({"status": "failed", "created_at": "2026-11-20T06:00:00+00:00",
                             "last_error": "550 5.1.1 mailbox unavailable"})
    report = collect_status(db, load_config(), config_error="unknown key 'max_itemz' in [digest]")
    assert report["problems"] == ["config_invalid", "run_failed", "deliveries_failing", "stale", "source_failed"]
    problem_lines = [line for line in format_status(report) if line.startswith(("WARNING:", "ERROR:"))]
    assert len(problem_lines) >= 5
    next_steps = ("check with `spsbot status`", "run `spsbot run` again (what was sent is never sent twice)",
                  "pending messages are retried next run", "the next run fetches what was missed")
    for line in problem_lines:
        assert line.endswith(next_steps), line
