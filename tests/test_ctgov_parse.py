"""Parsing real ClinicalTrials.gov v2 study records into trial records."""

import pytest

from bot.sources.clinicaltrials import parse_study, search_params
from bot.store.trials import TRACKED_FIELDS, tracked_snapshot
from ctgov_helpers import load, study


def test_completed_trial_with_results_section():
    record = parse_study(study("NCT02210780"))
    extra = record["extra"]
    assert record["kind"] == "trial" and record["source"] == "ctgov"
    assert record["nct_id"] == "NCT02210780"
    assert record["url"] == "https://clinicaltrials.gov/study/NCT02210780"
    assert record["title"] == "Study of Dupilumab and Immune Responses in Adults With Atopic Dermatitis (AD)"
    assert extra["official_title"].startswith("A Randomized, Double-Blind, Placebo-Controlled")
    assert extra["overall_status"] == "COMPLETED"
    assert extra["phases"] == ["PHASE2"] and record["pub_types"] == ["Clinical Trial, Phase 2"]
    assert extra["enrollment"] == 194 and extra["enrollment_type"] == "ACTUAL"
    assert extra["has_results"] is True
    assert extra["results_first_posted"] == {"date": "2020-05-07", "type": "ACTUAL"}
    assert extra["start_date"] == {"date": "2014-08-05", "type": "ACTUAL"}
    assert record["pub_date"] == "2014-08-07" and record["pub_year"] == 2014
    assert record["version_date"] == "2020-05-07"
    assert {"type": "DRUG", "name": "Dupilumab"} in extra["interventions"]
    assert len(extra["arms"]) == 2
    assert record["authors"] == ["Regeneron Pharmaceuticals"]
    tracked = tracked_snapshot(extra)
    assert set(tracked) == set(TRACKED_FIELDS)
    assert tracked["results_posted"] == "2020-05-07 (actual)"


def test_withdrawn_trial_with_why_stopped_month_only_dates_and_reference():
    record = parse_study(study("NCT00973089"))
    extra = record["extra"]
    assert extra["overall_status"] == "WITHDRAWN"
    assert extra["why_stopped"].startswith("recruiting or enrolling participants has halted")
    # month-only forms are kept as given, with the type where the registry gives one
    assert extra["start_date"] == {"date": "2010-05", "type": None}
    assert extra["completion_date"] == {"date": "2015-03", "type": "ACTUAL"}
    assert tracked_snapshot(record["extra"])["start_date"] == "2010-05"
    assert extra["has_results"] is False
    assert extra["references"] == [{"pmid": "18519994", "type": "BACKGROUND"}]
    assert extra["locations_count"] == 1 and extra["countries"] == ["Israel"]
    assert record["pub_types"] == ["Clinical Trial"]  # phase "NA"


def test_unknown_status_keeps_last_known_status_and_observational_type():
    record = parse_study(study("NCT03475563"))
    assert record["extra"]["overall_status"] == "UNKNOWN"
    assert record["extra"]["last_known_status"] == "RECRUITING"
    assert record["extra"]["phases"] == []
    assert record["pub_types"] == ["Observational Study"]
    assert record["extra"]["acronym"] == "BIOSS"


def test_non_ascii_and_estimated_dates():
    record = parse_study(study("NCT06171568"))
    assert record["title"] == "Lariboisière Cognitive Assessment: Evaluation of the 1-year Outcomes"
    assert record["authors"] == ["Assistance Publique - Hôpitaux de Paris"]
    assert record["extra"]["start_date"] == {"date": "2024-02-01", "type": "ESTIMATED"}
    assert tracked_snapshot(record["extra"])["start_date"] == "2024-02-01 (estimated)"


def test_results_with_document_section_and_no_phases_key():
    record = parse_study(study("NCT05594173"))
    assert record["extra"]["has_results"] is True
    assert record["extra"]["phases"] == []


def test_fields_filtered_search_page_parses_without_optional_modules():
    records = [parse_study(s) for s in load("studies_phelan_page1.json")["studies"]]
    assert [r["nct_id"] for r in records][0] == "NCT02710084"
    first = records[0]
    assert first["extra"]["has_results"] is False and first["extra"]["locations_count"] == 0
    assert first["extra"]["start_date"] == {"date": "2016-04-29", "type": None}
    assert first["extra"]["interventions"] == [{"type": "", "name": "Oxytocin"}, {"type": "", "name": "Saline"}]


def test_study_without_nct_id_is_refused():
    with pytest.raises(ValueError):
        parse_study({"protocolSection": {"identificationModule": {"briefTitle": "x"}}})


def test_incremental_search_uses_last_update_post_date_range():
    params = search_params(condition="Stiff-Person Syndrome", page_size=1000, since="2026-11-01")
    assert params["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2026-11-01,MAX]"
    assert params["query.cond"] == "Stiff-Person Syndrome" and params["pageSize"] == 1000
    with pytest.raises(ValueError):
        search_params(condition="x", page_size=1001)
