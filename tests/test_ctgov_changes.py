"""Field-level change tracking of trials in a real SQLite file."""

import json

from bot.sources.clinicaltrials import parse_study
from bot.store.trials import save_trials, trial_changes_since, tracked_trials
from ctgov_helpers import study


def _changes(db):
    return [(r["nct_id"], r["field"], r["old"], r["new"]) for r in db["trial_changes"].rows_where(order_by="id")]


def test_first_sight_is_a_version_without_events(db):
    counts = save_trials(db, [parse_study(study("NCT03475563"))], now="2026-11-01T00:00:00+00:00")
    assert counts["new"] == 1 and counts["versions"] == 1 and counts["changes"] == 0
    assert db["trial_versions"].count == 1 and db["trial_changes"].count == 0


def test_same_record_twice_yields_nothing(db):
    raw = study("NCT02210780")
    save_trials(db, [parse_study(raw)], now="2026-11-01T00:00:00+00:00")
    counts = save_trials(db, [parse_study(raw)], now="2026-11-08T00:00:00+00:00")
    assert counts["changes"] == 0 and counts["versions"] == 0 and counts["unchanged"] == 1
    assert db["trial_versions"].count == 1


def test_reformatted_but_equal_record_yields_nothing(db):
    raw = study("NCT02210780")
    save_trials(db, [parse_study(raw)], now="2026-11-01T00:00:00+00:00")
    # Round-trip through different JSON layout and key order, pad strings with whitespace,
    # and reverse lists whose order means nothing.
    reformatted = json.loads(json.dumps(raw, sort_keys=True, indent=1))
    proto = reformatted["protocolSection"]
    proto["statusModule"]["overallStatus"] = "  COMPLETED\n"
    proto["designModule"]["phases"] = ["PHASE2", " PHASE2"]
    proto["armsInterventionsModule"]["interventions"].reverse()
    proto["armsInterventionsModule"]["armGroups"].reverse()
    for arm in proto["armsInterventionsModule"]["armGroups"]:
        arm["label"] = "  " + arm["label"].replace(" ", "   ") + " "
    counts = save_trials(db, [parse_study(reformatted)], now="2026-11-08T00:00:00+00:00")
    assert counts["changes"] == 0 and counts["versions"] == 0


def test_record_edited_field_by_field_gives_one_event_per_changed_field(db):
    raw = study("NCT03475563")
    save_trials(db, [parse_study(raw)], now="2026-11-01T00:00:00+00:00")
    status = raw["protocolSection"]["statusModule"]
    edits = [
        ("overall_status", lambda: status.update(overallStatus="COMPLETED"), "UNKNOWN", "COMPLETED"),
        ("enrollment", lambda: raw["protocolSection"]["designModule"]["enrollmentInfo"].update(count=120),
         "100", "120"),
        ("primary_completion_date", lambda: status["primaryCompletionDateStruct"].update(date="2020-06", type="ACTUAL"),
         "2019-12-30 (estimated)", "2020-06 (actual)"),
        ("why_stopped", lambda: status.update(whyStopped="Sponsor decision"), "", "Sponsor decision"),
        ("results_posted", lambda: raw.update(hasResults=True), "", "yes"),
        ("results_posted", lambda: status.update(resultsFirstPostDateStruct={"date": "2026-11-07", "type": "ACTUAL"}),
         "yes", "2026-11-07 (actual)"),
        ("locations_count", lambda: raw["protocolSection"]["contactsLocationsModule"]["locations"].pop(), None, None),
        ("phases", lambda: raw["protocolSection"]["designModule"].update(phases=["PHASE4"]), "", "PHASE4"),
    ]
    for day, (field, edit, old, new) in enumerate(edits, start=2):
        edit()
        status["lastUpdatePostDateStruct"] = {"date": f"2026-11-{day:02d}", "type": "ACTUAL"}
        counts = save_trials(db, [parse_study(raw)], now=f"2026-11-{day:02d}T00:00:00+00:00")
        assert counts["changes"] == 1, field
        last = db.execute("select field, old, new, version_date from trial_changes order by id desc limit 1").fetchone()
        assert last[0] == field
        if old is not None:
            assert (last[1], last[2]) == (old, new)
        assert last[3] == f"2026-11-{day:02d}"
    assert db["trial_versions"].count == 1 + len(edits)
    # the previous versions are kept
    assert db.execute("select count(distinct content_hash) from trial_versions").fetchone()[0] == 1 + len(edits)


def test_changing_two_fields_at_once_gives_two_events_and_queries_show_them(db):
    raw = study("NCT06171568")
    save_trials(db, [parse_study(raw)], now="2026-11-01T00:00:00+00:00")
    raw["protocolSection"]["statusModule"]["overallStatus"] = "RECRUITING"
    raw["protocolSection"]["statusModule"]["startDateStruct"] = {"date": "2024-03-04", "type": "ACTUAL"}
    save_trials(db, [parse_study(raw)], now="2026-11-09T10:00:00+00:00")
    assert sorted(_changes(db)) == [
        ("NCT06171568", "overall_status", "NOT_YET_RECRUITING", "RECRUITING"),
        ("NCT06171568", "start_date", "2024-02-01 (estimated)", "2024-03-04 (actual)"),
    ]
    assert trial_changes_since(db, "2026-11-09") and not trial_changes_since(db, "2026-11-10")
    assert trial_changes_since(db, "2026-11-09")[0]["title"].startswith("Lariboisière")
    trials = {t["nct_id"]: t for t in tracked_trials(db)}
    assert trials["NCT06171568"]["status"] == "RECRUITING"
    assert trials["NCT06171568"]["change_count"] == 2
    assert trials["NCT06171568"]["last_change_at"] == "2026-11-09T10:00:00+00:00"


def test_a_trial_going_back_to_an_earlier_state_is_a_new_version(db):
    raw = study("NCT03475563")
    save_trials(db, [parse_study(raw)], now="2026-11-01T00:00:00+00:00")
    raw["protocolSection"]["statusModule"]["overallStatus"] = "SUSPENDED"
    save_trials(db, [parse_study(raw)], now="2026-11-02T00:00:00+00:00")
    raw["protocolSection"]["statusModule"]["overallStatus"] = "UNKNOWN"
    counts = save_trials(db, [parse_study(raw)], now="2026-11-03T00:00:00+00:00")
    assert counts["changes"] == 1
    assert [c[3] for c in _changes(db)] == ["SUSPENDED", "UNKNOWN"]
