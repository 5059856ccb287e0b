"""ClinicalTrials.gov pages and studies that misbehave (issues 11 and 12): token loops, empty pages,
short answers, duplicate JSON keys, and single studies a parser or a store cannot take.

Real HTTP on 127.0.0.1 (the CT.gov emulator, or a responder built from real recorded studies),
the real fetch stage. Derived studies: tests/fixtures/ctgov/derived/ (README).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bot.fetch import clinicaltrials as fetch_ctgov
from bot.fetch import fetch_all
from bot.replay import LocalServer, Response
from bot.replay.ctgov import ctgov_responder
from bot.sources import clinicaltrials as ctgov
from bot.store import get_state
from bot.store.quarantine import open_quarantine
from ctgov_helpers import FIXTURES, make_config, study
from faults.helpers import integrity

TRIALS = ["NCT02210780", "NCT05594173", "NCT00973089", "NCT03475563", "NCT06171568"]
MAX_CALLS = 60  # far more than any correct fetch of five studies takes


def derived(name: str) -> dict:
    return ctgov.decode_page((FIXTURES / "derived" / name).read_bytes())


class Counting:
    """A responder wrapper that counts requests and answers 500 past MAX_CALLS (a loop guard that
    lets an old, looping client end instead of hanging the suite)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __call__(self, request):
        self.calls += 1
        return Response(500, "loop guard", "text/plain") if self.calls > MAX_CALLS else self.inner(request)


def fetch(db, tmp_path, responder, page_size=1):
    with LocalServer(responder) as server:
        config = make_config(tmp_path, server.url, condition="any", page_size=page_size)
        client = ctgov.make_client(server.url, min_interval=0, backoff=0, max_retries=0)
        result = fetch_all(db, config, ["clinicaltrials"], clinicaltrials={"client": client})
    state = (get_state(db, "clinicaltrials", fetch_ctgov.state_query(config)) or {}).get("last_success")
    return result, state


def test_the_same_studies_with_a_fresh_token_stop_after_the_first_repeat(db, tmp_path):
    """The fault seen live: CT.gov answered the same page again and again, each time with a new
    nextPageToken (1,355 requests in a minute). A page that adds no new study ends the fetch."""
    responder = Counting(ctgov_responder([study(n) for n in TRIALS], match_queries=False, same_studies_after=2))
    result, state = fetch(db, tmp_path, responder)
    print(f"FAULT LINE [clinicaltrials: same studies, fresh token]: {result.errors['clinicaltrials']}")
    assert "serves only studies already served" in result.errors["clinicaltrials"]
    assert responder.calls == 3 and state is None and integrity(db) == "ok"


def test_pages_are_bounded_by_total_count(db, tmp_path):
    """A server inventing a new study on every page, forever, with totalCount 5: stopped at
    the pages 5 studies can fill plus a margin (7), state not advanced."""
    def endless(request):
        page = int(request.param("pageToken") or 0)
        fake = study("NCT02210780")
        fake["protocolSection"]["identificationModule"]["nctId"] = f"NCT9{page:07d}"
        body = {"studies": [fake], "nextPageToken": str(page + 1)}
        if not request.param("pageToken"):
            body["totalCount"] = 5
        return Response(200, json.dumps(body), "application/json")
    responder = Counting(endless)
    result, state = fetch(db, tmp_path, responder)
    print(f"FAULT LINE [clinicaltrials: endless pages]: {result.errors['clinicaltrials']}")
    assert responder.calls == ctgov.page_limit(5, 1) == 7
    assert "more than 7 pages" in result.errors["clinicaltrials"] and state is None
    assert db["items"].count == 7   # what was served is kept; the next run asks again


def test_an_empty_page_with_a_new_token_is_followed(db, tmp_path):
    responder = Counting(ctgov_responder([study(n) for n in TRIALS], match_queries=False, empty_page_before=2))
    result, state = fetch(db, tmp_path, responder)
    assert not result.errors and db["items"].count == 5 and state is not None
    assert responder.calls == 6   # five pages of one study, plus the empty one


def test_falling_short_of_total_count_without_a_token_fails_and_keeps_the_state(db, tmp_path):
    responder = ctgov_responder([study(n) for n in TRIALS], match_queries=False, count_extra=2)
    result, state = fetch(db, tmp_path, responder, page_size=2)
    error = result.errors["clinicaltrials"]
    print(f"FAULT LINE [clinicaltrials: short of totalCount]: {error}")
    assert "served 5 of the 7 studies it counted, with no nextPageToken" in error
    assert result.status == "failed" and state is None
    assert db["items"].count == 5   # stored, and asked for again next run


def test_duplicate_json_keys_fail_the_page_instead_of_losing_its_studies(db, tmp_path):
    """A page whose second "studies" key is empty: a lenient parser keeps the last one and takes
    the page for the end. Which did the server mean? Neither is safe: the fetch fails."""
    page = json.dumps({"studies": [study(n) for n in TRIALS], "totalCount": 5})
    duplicated = page[:-1] + ', "studies": []}'
    result, state = fetch(db, tmp_path, lambda request: Response(200, duplicated, "application/json"), page_size=10)
    error = result.errors["clinicaltrials"]
    print(f"FAULT LINE [clinicaltrials: duplicate JSON keys]: {error}")
    assert "duplicate JSON key(s) 'studies'" in error and state is None and db["items"].count == 0


def _registry_with(bad: dict) -> list[dict]:
    return [study("NCT02210780"), bad, study("NCT03475563"), study("NCT05594173")]


@pytest.mark.parametrize("name, label, reason", [
    ("study_derived_NCT00973089_enrollment_count_NaN.json", "NCT00973089",
     "protocolSection.designModule.enrollmentInfo.count is NaN, not a finite number"),
    ("study_derived_NCT00973089_integer_nctId.json", "973089", "nctId (got int 973089)"),
    ("study_derived_NCT06171568_lone_surrogate_in_title.json", "NCT06171568",
     "identificationModule.briefTitle has a lone surrogate"),
])
def test_one_bad_study_is_quarantined_and_the_rest_stored(db, tmp_path, name, label, reason):
    responder = ctgov_responder(_registry_with(derived(name)), match_queries=False)
    result, state = fetch(db, tmp_path, responder, page_size=10)
    assert not result.errors and state is not None        # the window moves on
    assert sorted(r["nct_id"] for r in db["items"].rows) == ["NCT02210780", "NCT03475563", "NCT05594173"]
    [held] = open_quarantine(db)
    assert (held["source"], held["record_id"]) == ("clinicaltrials", label) and reason in held["error"]
    assert result.counts["clinicaltrials"]["quarantined"] == 1


def test_a_nan_count_never_reaches_the_store_and_trials_views_keep_working(db, tmp_path, env_isolated, monkeypatch):
    """A NaN stored in items.extra made SQLite's JSON functions fail for every trial: `spsbot
    trials` and the trials_last_change view broke. Refused at parse, both keep working, and the
    study is stored once the registry serves it whole."""
    from bot.cli import cli
    from bot.store import open_db
    path = env_isolated / "cli.db"
    cli_db = open_db(path)
    bad = derived("study_derived_NCT00973089_enrollment_count_NaN.json")
    fetch(cli_db, tmp_path, ctgov_responder(_registry_with(bad), match_queries=False), page_size=10)
    assert "NaN" not in "".join(r["extra"] for r in cli_db["items"].rows)
    assert len(list(cli_db.query("select * from trials_last_change"))) == 3
    listed = CliRunner().invoke(cli, ["--db", str(path), "trials"])
    assert listed.exit_code == 0 and listed.output.count("NCT0") == 3, listed.output
    status = CliRunner().invoke(cli, ["--db", str(path), "status"])
    assert "Quarantine: 1 record(s)" in status.output and "NCT00973089" in status.output
    # the registry fixes the record (a new update date): stored, released
    fixed = study("NCT00973089")
    fixed["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2026-11-20", "type": "ACTUAL"}
    result, _ = fetch(cli_db, tmp_path, ctgov_responder(_registry_with(fixed), match_queries=False), page_size=10)
    assert result.counts["clinicaltrials"]["released"] == 1 and open_quarantine(cli_db) == []
    assert len(list(cli_db.query("select * from trials_last_change"))) == 4
