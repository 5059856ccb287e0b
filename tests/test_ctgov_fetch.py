"""Fetching ClinicalTrials.gov end to end over real HTTP on 127.0.0.1."""

import json

import pytest

from bot.fetch import clinicaltrials as fetch_ctgov
from bot.demo import fetch_trials
from bot.replay import LocalServer, Response
from bot.replay.ctgov import ctgov_responder
from bot.sources.clinicaltrials import iter_pages, make_client, search_studies
from bot.sources.http import SourceError
from bot.store import get_item
from ctgov_helpers import load, make_config, study

ALL_SINGLE = ["NCT02210780", "NCT05594173", "NCT00973089", "NCT03475563", "NCT06171568"]


def _phelan_responder():
    """The recorded Phelan page 1 → page 2 pair, then the single-study page with no token."""
    page1, page2 = load("studies_phelan_page1.json"), load("studies_phelan_page2.json")
    last = load("studies_single_page_NCT06388018.json")
    by_token = {None: page1, page1["nextPageToken"]: page2, page2["nextPageToken"]: last}

    def respond(request):
        page = by_token.get(request.param("pageToken"))
        if page is None:
            return Response(400, "bad token", "text/plain")
        return Response(200, json.dumps(page), "application/json")
    return respond


def test_recorded_pages_are_followed_until_no_next_page_token():
    with LocalServer(_phelan_responder()) as server:
        client = make_client(server.url, min_interval=0)
        stats, studies = {}, []
        # The recorded first page counts 21 studies; the third page (a recorded last page of
        # another search) ends the paging after 11: falling short of totalCount is a failed fetch.
        with pytest.raises(SourceError, match="served 11 of the 21 studies it counted"):
            for found in search_studies(client, condition="Phelan-McDermid Syndrome", page_size=5, stats=stats):
                studies.append(found)
        requests = server.requests
    assert len(studies) == 5 + 5 + 1 and stats["pages"] == 3 and stats["total"] == 21
    assert [r.param("pageToken") for r in requests] == [None, load("studies_phelan_page1.json")["nextPageToken"],
                                                        load("studies_phelan_page2.json")["nextPageToken"]]
    # countTotal only on the first page; the query is repeated on every page
    assert [r.param("countTotal") for r in requests] == ["true", None, None]
    assert all(r.param("query.cond") == "Phelan-McDermid Syndrome" and r.param("pageSize") == "5"
               for r in requests)
    assert all(r.path == "/studies" for r in requests)


def test_single_page_without_token_is_one_request():
    def respond(request):
        return Response(200, json.dumps(load("studies_single_page_NCT06388018.json")), "application/json")

    with LocalServer(respond) as server:
        client = make_client(server.url, min_interval=0)
        studies = list(search_studies(client, condition="x"))
        assert len(server.requests) == 1
    assert len(studies) == 1


@pytest.mark.parametrize("fault", [{"repeat_token_after": 1}, {"same_studies_after": 2}])
def test_repeating_token_or_repeated_studies_stop_with_an_error(fault):
    studies = [study(n) for n in ALL_SINGLE]
    with LocalServer(ctgov_responder(studies, **fault)) as server:
        client = make_client(server.url, min_interval=0)
        with pytest.raises(SourceError, match="forever"):
            list(iter_pages(client, {"pageSize": 1, "format": "json"}))
        assert len(server.requests) <= 4


def test_terms_are_merged_and_deduplicated_by_nct_id():
    studies = [study(n) for n in ALL_SINGLE]
    with LocalServer(ctgov_responder(studies)) as server:
        client = make_client(server.url, min_interval=0)
        found = list(search_studies(client, condition="Atopic Dermatitis", terms=["dupilumab", "atopic"]))
        assert len(server.requests) == 3
    assert [s["protocolSection"]["identificationModule"]["nctId"] for s in found] == ["NCT02210780"]


def test_run_stores_everything_then_incremental_run_records_exactly_the_real_change(db, tmp_path, monkeypatch):
    studies = [study(n) for n in ALL_SINGLE]
    for s in studies:  # one condition all five share, so one search finds them all
        s["protocolSection"].setdefault("conditionsModule", {}).setdefault("conditions", []).append("Test Condition")
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-01T06:00:00+00:00")
    with LocalServer(ctgov_responder(studies, page_size_cap=2)) as server:
        config = make_config(tmp_path, server.url, condition="Test Condition", page_size=2)
        first = fetch_ctgov.run(db, config).counts
        assert first["fetched"] == 5 and first["new"] == 5 and first["changes"] == 0
        assert first["requests"] == 3 and first["pages"] == 3  # ⌈5/2⌉ pages
        assert "filter.advanced" not in server.requests[0].query

        # The registry updates one trial; an incremental run asks only for recent updates.
        status = studies[3]["protocolSection"]["statusModule"]
        status["overallStatus"] = "COMPLETED"
        status["lastUpdatePostDateStruct"] = {"date": "2026-11-05", "type": "ACTUAL"}
        monkeypatch.setenv("SPSBOT_NOW", "2026-11-08T06:00:00+00:00")
        server.requests.clear()
        second = fetch_ctgov.run(db, config).counts
        assert server.requests[0].param("filter.advanced") == "AREA[LastUpdatePostDate]RANGE[2026-10-29,MAX]"
        assert second["fetched"] == 1 and second["changes"] == 1 and second["new"] == 0

        # Re-running stores no duplicates and no new events.
        third = fetch_ctgov.run(db, config, full=True).counts
        assert third["fetched"] == 5 and third["new"] == 0 and third["changes"] == 0
    assert db["items"].count == 5
    change = next(db["trial_changes"].rows)
    assert (change["nct_id"], change["field"], change["old"], change["new"]) == \
        ("NCT03475563", "overall_status", "UNKNOWN", "COMPLETED")
    assert change["detected_at"] == "2026-11-08T06:00:00+00:00" and change["version_date"] == "2026-11-05"
    assert json.loads(get_item(db, "nct:NCT03475563")["sources"]) == ["ctgov"]


def test_failed_run_does_not_advance_the_state(db, tmp_path, monkeypatch):
    from bot.store import get_state
    with LocalServer(lambda request: Response(404, "no", "text/plain")) as server:
        config = make_config(tmp_path, server.url, condition="x")
        with pytest.raises(SourceError):
            fetch_ctgov.run(db, config, backoff=0)
    assert get_state(db, fetch_ctgov.SOURCE, fetch_ctgov.state_query(config)) is None


def test_server_errors_are_retried(db, tmp_path):
    calls = []

    def flaky(request):
        calls.append(1)
        if len(calls) == 1:
            return Response(503, "busy", "text/plain", headers={"Retry-After": "0"})
        return Response(200, json.dumps(load("studies_single_page_NCT06388018.json")), "application/json")
    with LocalServer(flaky) as server:
        config = make_config(tmp_path, server.url, condition="x")
        counts = fetch_ctgov.run(db, config, backoff=0).counts
    assert counts["fetched"] == 1 and counts["requests"] == 2


def test_demo_trial_step_records_the_bundled_status_change(db, tmp_path):
    config = make_config(tmp_path, "http://127.0.0.1:9", condition="Stiff-Person Syndrome")
    summary = fetch_trials(db, config)
    assert summary["first"]["new"] == 6 and summary["second"]["fetched"] == 1
    assert {(c["nct_id"], c["field"], c["new"]) for c in summary["changes"]} >= {
        ("NCT03829826", "overall_status", "COMPLETED")}
    assert [r["status"] for r in db["runs"].rows] == ["ok", "ok"]


def test_requests_are_spaced_by_the_configured_interval(db, tmp_path):
    """The configured min_interval reaches the chokepoint: every request after the first waits."""
    waits = []
    studies = [study(n) for n in ALL_SINGLE]
    with LocalServer(ctgov_responder(studies, page_size_cap=2)) as server:
        config = make_config(tmp_path, server.url, condition="Atopic Dermatitis", terms=["stent"],
                             min_interval=1.0, page_size=2)
        counts = fetch_ctgov.run(db, config, sleep=waits.append).counts
    assert counts["requests"] == 2 and counts["fetched"] == 2
    assert len(waits) == 1 and 0.5 < waits[0] <= 1.0


def test_a_trial_stored_with_markdown_escapes_is_no_change_when_fetched_again(db, tmp_path, monkeypatch):
    """Versions stored before markdown was read as text hold ``R\\&D``, ``\\[…\\]``: fetched again, the
    same reason read as text (``R&D``, ``[…]``) is no "Why stopped" change; a real edit still is."""
    from bot.sources.clinicaltrials import parse_study
    from bot.store.trials import save_trials
    raw = study("NCT00973089")
    proto = raw["protocolSection"]
    proto["statusModule"]["whyStopped"] = "Sponsor R\\&D decision \\[funding ended\\]\n  (see *notice*)"
    proto["descriptionModule"]["briefSummary"] = "Deep carious lesions \\[primary teeth\\]: R\\&D"
    proto.setdefault("conditionsModule", {}).setdefault("conditions", []).append("Test Condition")
    old = parse_study(raw)   # as the parser stored it before: the markdown, whitespace collapsed
    old["extra"]["why_stopped"] = "Sponsor R\\&D decision \\[funding ended\\] (see *notice*)"
    old["extra"].pop("why_stopped_markdown", None)
    old["abstract"] = "Deep carious lesions \\[primary teeth\\]: R\\&D"
    save_trials(db, [old], now="2026-10-01T00:00:00+00:00")
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-08T06:00:00+00:00")
    with LocalServer(ctgov_responder([raw])) as server:
        config = make_config(tmp_path, server.url, condition="Test Condition")
        counts = fetch_ctgov.run(db, config, full=True).counts
        assert counts["changes"] == 0 and db["trial_changes"].count == 0
        item = get_item(db, "nct:NCT00973089")
        assert json.loads(item["extra"])["why_stopped"] == "Sponsor R&D decision [funding ended] (see notice)"
        assert item["abstract"] == "Deep carious lesions [primary teeth]: R&D"
        # the plain text is the stored version now: a real edit is one event, from the plain text
        proto["statusModule"]["whyStopped"] = "Sponsor R\\&D decision"
        assert fetch_ctgov.run(db, config, full=True).counts["changes"] == 1
    change = next(db["trial_changes"].rows)
    assert (change["field"], change["old"], change["new"]) == \
        ("why_stopped", "Sponsor R&D decision [funding ended] (see notice)", "Sponsor R&D decision")
