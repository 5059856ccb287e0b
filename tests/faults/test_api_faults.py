"""API faults: PubMed and ClinicalTrials.gov servers on 127.0.0.1 that misbehave on cue.

For every fault the same four promises are checked, through the real fetch stage (``fetch_all``):
1. the run recovers (retries) or fails with ONE clear line naming the source;
2. what was stored before is intact (every earlier row keeps its content hash; integrity ok);
3. on failure the incremental state is not advanced (the missed window is kept);
4. the next run against a healthy server stores exactly the missing records, nothing twice.

The error lines printed here (``FAULT LINE``) are the ones quoted in docs/reliability.md.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bot.config import load_config
from bot.fetch import clinicaltrials as fetch_ctgov
from bot.fetch import fetch_all
from bot.replay import LocalServer, Response
from bot.replay.ctgov import ctgov_responder
from bot.replay.eutils import EFETCH_HEAD, ESEARCH_HEAD, eutils_responder
from bot.sources import clinicaltrials as ctgov
from bot.sources import pubmed
from bot.store import get_state
from ctgov_helpers import make_config, study
from faults.helpers import DEMO_END, SEED_END, Faulty, Sleeps, demo_articles, integrity, snapshot

ARTICLES = demo_articles()
# The client's read timeout: only the "read timeout" fault answers slower than this (by 1.5 s);
# a healthy local answer takes milliseconds, so a busy CI machine does not trip it.
TIMEOUT = 1.0
# NCBI's real rate-limit answer, as recorded (see tests/fixtures/pubmed/README.md)
RATE_LIMIT_JSON = (Path(__file__).parent.parent / "fixtures" / "pubmed"
                   / "misc_biomcp_eutils_json_error_API_rate_limit_exceeded.json").read_text(encoding="utf-8")
XML_CUT = EFETCH_HEAD + "<PubmedArticleSet>\n" + ARTICLES[0] + "\n" + ARTICLES[1][:400]  # ends mid-element


def _efetch_body(n: int = 3) -> str:
    return EFETCH_HEAD + "<PubmedArticleSet>\n" + "\n".join(ARTICLES[:n]) + "\n</PubmedArticleSet>\n"


# name: (endpoint, responses, persistent, expected outcome of the faulty run)
PUBMED_FAULTS = {
    "429 with Retry-After": ("efetch", [Response(429, RATE_LIMIT_JSON, "application/json",
                                                 headers={"Retry-After": "7"})], False, "ok"),
    "429 without Retry-After": ("efetch", [Response(429, "Too Many Requests", "text/plain")], False, "ok"),
    "500/502/503 burst": ("efetch", [Response(500, "oops", "text/plain"), Response(502, "bad gateway", "text/plain"),
                                     Response(503, "busy", "text/plain")], False, "ok"),
    "503 for longer than the retries": ("efetch", [Response(503, "down", "text/plain")], True, "failed"),
    "connection reset": ("efetch", [Response(reset=True)], False, "ok"),
    "read timeout": ("efetch", [Response(200, _efetch_body(), delay=TIMEOUT + 1.5)], False, "ok"),
    "connection closed mid-XML": ("efetch", [Response(200, _efetch_body(), cut_after=700)], False, "ok"),
    # fetched again in halves (the bad-record isolation), which the server then answers whole
    "complete answer, XML cut short": ("efetch", [Response(200, XML_CUT)], False, "ok"),
    "valid XML of the wrong shape (efetch)": ("efetch", [Response(200, '<?xml version="1.0"?>\n<eSummaryResult>'
                                                                  '<DocSum><Id>1</Id></DocSum></eSummaryResult>')],
                                              False, "partial"),
    "valid XML of the wrong shape (esearch)": ("esearch", [Response(200, ESEARCH_HEAD + "<eSearchResult><Stuff/>"
                                                                    "</eSearchResult>")], False, "failed"),
    "esearch ErrorList": ("esearch", [Response(200, ESEARCH_HEAD + "<eSearchResult><Count>0</Count><ErrorList>"
                                               "<FieldNotFound>[zzz]</FieldNotFound></ErrorList></eSearchResult>")],
                          False, "failed"),
    "esearch <ERROR> with status 200": ("esearch", [Response(200, ESEARCH_HEAD + "<eSearchResult><ERROR>Invalid "
                                                             "query syntax</ERROR></eSearchResult>")], False, "failed"),
    "efetch <ERROR> with status 200": ("efetch", [Response(200, '<?xml version="1.0" encoding="UTF-8" ?>\n'
                                                           "<eFetchResult>\n\t<ERROR>Unable to obtain query #1"
                                                           "</ERROR>\n</eFetchResult>\n")], False, "partial"),
    "NCBI rate-limit JSON body with status 200": ("esearch", [Response(200, RATE_LIMIT_JSON, "application/json")],
                                                  False, "failed"),
    "empty efetch page": ("efetch", [Response(200, EFETCH_HEAD + "<PubmedArticleSet>\n</PubmedArticleSet>\n")],
                          False, "partial"),
    "HTTP 400 (not retryable)": ("efetch", [Response(400, "Bad Request: retmax too large", "text/plain")],
                                 False, "failed"),
}


def pubmed_fetch(db, url, window_end, sleeps=None):
    config = load_config(env={"SPSBOT_EUTILS_URL": url + "/entrez/eutils"})
    config.sections["sources.pubmed"]["batch_size"] = 10
    # The modified-records sweep would re-read the demo records (their DateRevised falls in the
    # faulty run's window) and hide what the create-date window does on a fault: off here.
    config.sections["sources.pubmed"]["modified_days"] = 0
    client = pubmed.configured_client(config, env={}, min_interval=0, backoff=0, max_retries=3, timeout=TIMEOUT,
                                sleep=sleeps or Sleeps())
    return config, fetch_all(db, config, ["pubmed"], pubmed={"client": client, "window_end": window_end})


def pubmed_state(db, config):
    return (get_state(db, "pubmed", config.topic.pubmed_query) or {}).get("window_end")


def _one_clear_line(error: str, source: str) -> None:
    """The CLI prints ``<source>: FAILED: <error>``: the error must be one line that says why."""
    assert error and "\n" not in error and "Traceback" not in error and len(error) <= 500
    assert source in error or "batch" in error, error


@pytest.mark.parametrize("fault", list(PUBMED_FAULTS))
def test_pubmed_fault_keeps_data_and_the_next_run_catches_up(db, fault):
    endpoint, responses, persistent, expected = PUBMED_FAULTS[fault]
    with LocalServer(eutils_responder(ARTICLES)) as healthy:
        config, seeded = pubmed_fetch(db, healthy.url, SEED_END)
    assert not seeded.errors
    before = snapshot(db)
    assert 40 < len(before) < len(ARTICLES)

    sleeps = Sleeps()
    # esearch is spoiled on its first call, efetch on the second batch (the first one is stored).
    faulty = Faulty(eutils_responder(ARTICLES), endpoint, copy.deepcopy(responses),
                    at=1 if endpoint == "esearch" else 2, persistent=persistent)
    with LocalServer(faulty) as server:
        config, result = pubmed_fetch(db, server.url, DEMO_END, sleeps)
    assert faulty.served_faults >= 1
    after = snapshot(db)
    assert {k: after[k] for k in before} == before and integrity(db) == "ok"
    assert db.execute("select count(*) = count(distinct pmid) from items").fetchone()[0] == 1
    last_run = list(db.query("select status from runs where command = 'fetch' order by id desc limit 1"))[0]
    if expected == "ok":
        assert not result.errors and last_run["status"] == "ok"
        assert len(after) == len(ARTICLES) and pubmed_state(db, config) == DEMO_END
        if "Retry-After" in fault and "without" not in fault:
            assert 7.0 in sleeps.calls  # the server's Retry-After was honoured
        return
    error = result.errors["pubmed"]
    print(f"FAULT LINE [pubmed: {fault}]: {error}")
    _one_clear_line(error, "pubmed")
    assert result.status == expected == last_run["status"]
    assert len(after) < len(ARTICLES)
    assert pubmed_state(db, config) == SEED_END, "state advanced past a window that was not read"

    with LocalServer(eutils_responder(ARTICLES)) as healthy:
        config, caught_up = pubmed_fetch(db, healthy.url, DEMO_END)
    assert not caught_up.errors
    final = snapshot(db)
    assert len(final) == len(ARTICLES) and {k: final[k] for k in before} == before
    assert pubmed_state(db, config) == DEMO_END


# --- ClinicalTrials.gov -----------------------------------------------------------------------

TRIALS = ["NCT02210780", "NCT05594173", "NCT00973089", "NCT03475563", "NCT06171568"]


def registry(updated: str = "2026-11-03") -> list[dict]:
    """Five real studies: the first three last updated in October (seen by the seed run), the last
    three updated on ``updated`` (the third one again, with no content change)."""
    studies = [study(n) for n in TRIALS]
    for index, s in enumerate(studies):
        date = "2026-10-20" if index < 2 else updated
        s["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": date, "type": "ACTUAL"}
    return studies


def _json(page: dict) -> str:
    return json.dumps(page)


CTGOV_FAULTS = {
    "429 with Retry-After": ([Response(429, "Too Many Requests", "text/plain", headers={"Retry-After": "3"})],
                             False, "ok"),
    "500/502/503 burst": ([Response(500, "oops", "text/plain"), Response(502, "", "text/plain"),
                           Response(503, "busy", "text/plain")], False, "ok"),
    "connection reset": ([Response(reset=True)], False, "ok"),
    "read timeout": ([Response(200, "{}", "application/json", delay=TIMEOUT + 1.5)], False, "ok"),
    "connection closed mid-JSON": ([Response(200, _json({"studies": [study("NCT02210780")] * 3}), "application/json",
                                             cut_after=500)], False, "ok"),
    "complete answer, JSON cut short": ([Response(200, _json({"studies": [study("NCT02210780")]})[:500],
                                                  "application/json")], False, "failed"),
    "valid JSON of the wrong shape": ([Response(200, _json({"message": "maintenance", "items": []}),
                                                "application/json")], False, "failed"),
    "HTTP 400 (not retryable)": ([Response(400, "invalid pageToken", "text/plain")], False, "failed"),
}


def ctgov_fetch(db, tmp_path, url, sleeps=None):
    config = make_config(tmp_path, url, condition="any", page_size=1)
    client = ctgov.make_client(url, min_interval=0, backoff=0, max_retries=3, timeout=TIMEOUT,
                               sleep=sleeps or Sleeps())
    return config, fetch_all(db, config, ["clinicaltrials"], clinicaltrials={"client": client})


def ctgov_state(db, config):
    return (get_state(db, "clinicaltrials", fetch_ctgov.state_query(config)) or {}).get("last_success")


def _seed_trials(db, tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-01T06:00:00+00:00")
    with LocalServer(ctgov_responder(registry()[:3], match_queries=False)) as healthy:
        config, seeded = ctgov_fetch(db, tmp_path, healthy.url)
    assert not seeded.errors and db["items"].count == 3
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-08T06:00:00+00:00")
    return snapshot(db)


def _ctgov_fault_then_catch_up(db, tmp_path, monkeypatch, responder, fault, expected, sleeps=None):
    before = _seed_trials(db, tmp_path, monkeypatch)
    with LocalServer(responder) as server:
        config, result = ctgov_fetch(db, tmp_path, server.url, sleeps)
        # incremental: only the three studies updated since the seed run (minus the overlap)
        assert server.requests[0].param("filter.advanced") == "AREA[LastUpdatePostDate]RANGE[2026-10-29,MAX]"
    after = snapshot(db)
    assert {k: after[k] for k in before} == before and integrity(db) == "ok"
    if expected == "ok":
        assert not result.errors and len(after) == 5
        assert ctgov_state(db, config) == "2026-11-08T06:00:00+00:00"
        return
    error = result.errors["clinicaltrials"]
    print(f"FAULT LINE [clinicaltrials: {fault}]: {error}")
    _one_clear_line(error, "clinicaltrials")
    assert result.status == "failed" and len(after) < 5
    assert ctgov_state(db, config) == "2026-11-01T06:00:00+00:00", "state advanced after a failed fetch"
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-09T06:00:00+00:00")
    with LocalServer(ctgov_responder(registry(), match_queries=False)) as healthy:
        config, caught_up = ctgov_fetch(db, tmp_path, healthy.url)
        assert healthy.requests[0].param("filter.advanced") == "AREA[LastUpdatePostDate]RANGE[2026-10-29,MAX]"
    assert not caught_up.errors
    final = snapshot(db)
    assert len(final) == 5 and {k: final[k] for k in before} == before


@pytest.mark.parametrize("fault", list(CTGOV_FAULTS))
def test_ctgov_fault_keeps_data_and_the_next_run_catches_up(db, tmp_path, monkeypatch, fault):
    responses, persistent, expected = CTGOV_FAULTS[fault]
    sleeps = Sleeps()
    responder = Faulty(ctgov_responder(registry(), match_queries=False), "studies", copy.deepcopy(responses),
                       at=2, persistent=persistent)
    _ctgov_fault_then_catch_up(db, tmp_path, monkeypatch, responder, fault, expected, sleeps)
    assert responder.served_faults >= 1
    if fault == "429 with Retry-After":
        assert 3.0 in sleeps.calls


@pytest.mark.parametrize("fault", ["repeating nextPageToken", "empty page that loses its studies"])
def test_ctgov_paging_fault_stops_instead_of_looping(db, tmp_path, monkeypatch, fault):
    # an empty page with a fresh token is followed (the spec allows it); when the studies it
    # stood for never come, the search falls short of its totalCount and fails
    option = {"repeat_token_after": 1} if fault.startswith("repeating") else {"empty_page_at": 2}
    responder = ctgov_responder(registry(), match_queries=False, **option)
    calls = []

    def counting(request):
        calls.append(request)
        assert len(calls) < 20, "still paging: would loop forever"
        return responder(request)
    _ctgov_fault_then_catch_up(db, tmp_path, monkeypatch, counting, fault, "failed")
    assert len(calls) <= 5


def test_a_fault_through_the_cli_is_one_line_and_exit_1(env_isolated, monkeypatch):
    """`spsbot fetch` against a server that answers 400: exit 1, the failure on ONE stderr line,
    no traceback; the database opens clean afterwards."""
    from click.testing import CliRunner

    from bot.cli import cli
    config = env_isolated / "spsbot.toml"
    config.write_text("[sources.clinicaltrials]\nenabled = false\n", encoding="utf-8")
    monkeypatch.setenv("SPSBOT_CONFIG", str(config))
    with LocalServer(lambda request: Response(400, "Bad Request: bad term", "text/plain")) as server:
        monkeypatch.setenv("SPSBOT_EUTILS_URL", server.url + "/entrez/eutils")
        result = CliRunner(mix_stderr=False).invoke(cli, ["-q", "fetch"]) if _has_mix_stderr() else \
            CliRunner().invoke(cli, ["-q", "fetch"])
    stderr = result.stderr
    print(f"FAULT LINE [cli fetch, HTTP 400]: {stderr.strip().splitlines()[-1]}")
    assert result.exit_code == 1 and "Traceback" not in stderr
    failed = [line for line in stderr.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and failed[0].startswith("pubmed: FAILED: SourceError: pubmed ") and "HTTP 400" in failed[0]
    from bot.store import open_db
    assert integrity(open_db(env_isolated / "cli.db")) == "ok"


def _has_mix_stderr() -> bool:
    import inspect

    from click.testing import CliRunner
    return "mix_stderr" in inspect.signature(CliRunner.__init__).parameters
