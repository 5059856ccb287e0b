"""The ClinicalTrials.gov v2 emulator answers like the real API (it is what the demo and bench use)."""

import requests

from bot.replay import LocalServer
from bot.replay.ctgov import DEMO_CHANGED_TRIAL, ctgov_responder, demo_studies
from ctgov_helpers import study

NCTS = ["NCT02210780", "NCT05594173", "NCT00973089", "NCT03475563", "NCT06171568"]


def _ids(page):
    return [s["protocolSection"]["identificationModule"]["nctId"] for s in page["studies"]]


def test_pages_tokens_and_total_count_only_on_the_first_page():
    with LocalServer(ctgov_responder([study(n) for n in NCTS])) as server:
        first = requests.get(f"{server.url}/api/v2/studies", params={"pageSize": 2, "countTotal": "true"}).json()
        second = requests.get(f"{server.url}/api/v2/studies",
                              params={"pageSize": 2, "countTotal": "true", "pageToken": first["nextPageToken"]}).json()
        third = requests.get(f"{server.url}/api/v2/studies",
                             params={"pageSize": 2, "countTotal": "true", "pageToken": second["nextPageToken"]}).json()
        too_big = requests.get(f"{server.url}/api/v2/studies", params={"pageSize": 1001})
    assert first["totalCount"] == 5 and "totalCount" not in second and "totalCount" not in third
    assert _ids(first) + _ids(second) + _ids(third) == NCTS
    assert "nextPageToken" not in third
    assert too_big.status_code == 400


def test_last_update_post_date_range_and_query_filters():
    with LocalServer(ctgov_responder([study(n) for n in NCTS])) as server:
        since = requests.get(f"{server.url}/studies", params={
            "filter.advanced": "AREA[LastUpdatePostDate]RANGE[2019-11-27,MAX]"}).json()
        window = requests.get(f"{server.url}/studies", params={
            "filter.advanced": "AREA[LastUpdatePostDate]RANGE[2015-01-01,2019-12-31]"}).json()
        cond = requests.get(f"{server.url}/studies", params={"query.cond": "atopic dermatitis"}).json()
    # last update posted: NCT02210780 2020-05-07, NCT03475563 2019-11-27, NCT06171568 2023-12-14, …
    assert set(_ids(since)) >= {"NCT02210780", "NCT03475563", "NCT06171568"}
    assert "NCT00973089" not in _ids(since)  # 2015-08-19
    assert "NCT00973089" in _ids(window) and "NCT06171568" not in _ids(window)
    assert _ids(cond) == ["NCT02210780"]


def test_demo_versions_differ_only_in_the_changed_trial():
    first, second = demo_studies(1), demo_studies(2, update_date="2026-11-21")
    assert [s["protocolSection"]["identificationModule"]["nctId"] for s in first] == \
        [s["protocolSection"]["identificationModule"]["nctId"] for s in second]
    changed = [b for a, b in zip(first, second) if a != b]
    assert len(changed) == 1
    status = changed[0]["protocolSection"]["statusModule"]
    assert changed[0]["protocolSection"]["identificationModule"]["nctId"] == DEMO_CHANGED_TRIAL
    assert status["overallStatus"] == "COMPLETED" and status["lastUpdatePostDateStruct"]["date"] == "2026-11-21"
