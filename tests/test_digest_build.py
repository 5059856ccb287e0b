"""The digest builder: windows, themes, caps, trial changes, links, notices, never twice."""

import json

import pytest

from bot.config import load_config
from bot.digest.builder import Pool, build_digest_data, build_digests, change_text, digest_keys
from bot.digest.entries import display_date, evidence_label, safe_url, short_authors
from bot.digest.subscribers import add_subscriber
from digest_support import NOW, paper, seed, trial

LATER = "2026-11-30T06:00:00+00:00"


@pytest.fixture
def config(monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    return load_config()


def _data(db, config, email, now=NOW):
    """The stored data of the subscriber's latest digest."""
    row = list(db.query("select d.data from digests d join subscribers s on s.id = d.subscriber_id "
                        "where s.email = ? order by d.id desc limit 1", [email]))[0]
    return json.loads(row["data"])


def _titles(data):
    return [e["title"] for s in data["sections"] for e in s["items"]] + [e["title"] for e in data["linked"]]


def test_first_digest_after_backfill_holds_only_the_last_period(db, config):
    future = paper(6, "Indexed this week, issue dated next year", date="2026-11-21")
    future[0]["pub_date"] = "2027-01"
    vague = paper(4, "Only a year", date="2026-02-10")
    vague[0]["pub_date"] = "2026"  # a year-only publication date never makes an old record news
    seed(db, [future, paper(1, "This week", date="2026-11-20"), paper(2, "Back catalogue 2019", date="2019-03-01"),
              paper(3, "Last month", date="2026-10-20"), vague,
              paper(5, "Period start day", date="2026-11-16"), paper(7, "First day of the header", date="2026-11-17")])
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    result = build_digests(db, config)
    assert len(result.built) == 1
    data = _data(db, config, "ann@example.org")
    assert data["first"] is True
    # headed 17–23 Nov: the period starts at 16 Nov 06:00, a day last week's digest covered
    assert sorted(_titles(data)) == ["First day of the header", "Indexed this week, issue dated next year",
                                     "This week"]


def test_subscriber_with_one_theme_gets_only_that_theme(db, config):
    seed(db, [paper(1, "IVIG paper", themes={"immunomodulation": 0.9}),
              paper(2, "Baclofen paper", themes={"symptomatic": 0.9}),
              paper(3, "Both", themes={"symptomatic": 0.6, "immunomodulation": 0.9}),
              trial("NCT00000001", "Immune trial", themes={"immunomodulation": 0.9}),
              trial("NCT00000002", "Symptomatic trial", themes={"symptomatic": 0.9})])
    add_subscriber(db, "sym@example.org", valid_themes=config.theme_names, themes="symptomatic")
    add_subscriber(db, "all@example.org", valid_themes=config.theme_names)
    build_digests(db, config)
    sym = _data(db, config, "sym@example.org")
    assert [s["theme"] for s in sym["sections"]] == ["symptomatic"]
    assert sorted(_titles(sym)) == ["Baclofen paper", "Both"]
    assert [t["title"] for t in sym["trials"]] == ["Symptomatic trial"]
    everyone = _data(db, config, "all@example.org")
    assert {s["theme"] for s in everyone["sections"]} == {"immunomodulation", "symptomatic"}
    assert len(everyone["trials"]) == 2


def test_irrelevant_items_excluded_and_cap_keeps_the_best(db, config):
    pairs = [paper(i, f"Paper {i}", relevance=i / 100) for i in range(1, 31)]
    pairs.append(paper(99, "Not about SPS", relevant=0, relevance=0.99))
    seed(db, pairs)
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names, max_items=5)
    build_digests(db, config)
    data = _data(db, config, "ann@example.org")
    assert _titles(data) == ["Paper 30", "Paper 29", "Paper 28", "Paper 27", "Paper 26"]


def test_an_item_is_never_sent_twice(db, config, monkeypatch):
    seed(db, [paper(1, "First week paper", date="2026-11-20")])
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    first = build_digests(db, config)
    assert len(first.built) == 1
    # a pending delivery blocks a second digest; once it is "sent", a week later the old item stays out
    assert build_digests(db, config, now=LATER).skipped == 1
    db.execute("update deliveries set status = 'sent'")
    db.conn.commit()
    monkeypatch.setenv("SPSBOT_NOW", LATER)
    seed(db, [paper(1, "First week paper", date="2026-11-20"), paper(2, "Second week paper", date="2026-11-27")],
          now=LATER)
    second = build_digests(db, config, now=LATER)
    assert len(second.built) == 1
    data = _data(db, config, "ann@example.org")
    assert _titles(data) == ["Second week paper"] and data["first"] is False
    assert data["period_start"] == NOW
    # same day again: not due
    assert build_digests(db, config, now=LATER).skipped == 1
    rows = list(db.query("select item_id, count(*) as n from sent_items group by item_id"))
    assert all(r["n"] == 1 for r in rows)


def test_nothing_new_builds_nothing_unless_send_empty(db, config):
    add_subscriber(db, "quiet@example.org", valid_themes=config.theme_names)
    add_subscriber(db, "loud@example.org", valid_themes=config.theme_names, send_empty=True)
    result = build_digests(db, config)
    assert (len(result.built), result.empty) == (1, 1)
    assert "nothing new" in list(db.query("select subject from digests"))[0]["subject"]


def test_trial_changes_links_and_notices(db, config, monkeypatch):
    seed(db, [trial("NCT01234567", "Efgartigimod for SPS", date="2025-01-10"),
              paper(11, "Old paper later retracted", date="2026-11-18")])
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    build_digests(db, config)
    db.execute("update deliveries set status = 'sent'")
    db.execute("update sent_items set sent_at = ?", [NOW])
    db.conn.commit()
    monkeypatch.setenv("SPSBOT_NOW", LATER)
    with db.atomic():
        db["trial_changes"].insert_all([
            {"nct_id": "NCT01234567", "field": "overall_status", "old": "RECRUITING", "new": "COMPLETED",
             "detected_at": "2026-11-28T06:00:00+00:00"},
            {"nct_id": "NCT01234567", "field": "has_results", "old": "no", "new": "yes",
             "detected_at": "2026-11-28T06:00:00+00:00"},
            {"nct_id": "NCT01234567", "field": "enrollment", "old": "40", "new": "62",
             "detected_at": "2026-11-01T06:00:00+00:00"}])  # before the window: not news
        db["links"].insert({"paper_id": "pmid:12", "trial_id": "nct:NCT01234567", "evidence": "databank",
                            "created_at": LATER})
    seed(db, [paper(12, "Efgartigimod trial results", date="2026-11-27", pub_types=["Randomized Controlled Trial"]),
              paper(11, "Old paper later retracted", date="2026-11-18", pub_types=["Journal Article"],
                    extra={"corrections": [{"type": "RetractionIn", "pmid": "13"}]})], now=LATER)
    build_digests(db, config, now=LATER)
    data = _data(db, config, "ann@example.org")
    assert data["changes"][0]["nct_id"] == "NCT01234567"
    assert data["changes"][0]["changes"] == ["Status: Recruiting → Completed", "Results posted"]
    assert data["linked"][0]["title"] == "Efgartigimod trial results"
    assert data["linked"][0]["trial_links"][0]["phrase"] == "reports on"
    assert data["linked"][0]["label"] == "RCT"
    assert [n["what"] for n in data["notices"]] == ["retracted"]
    assert data["notices"][0]["item_id"] == "pmid:11"
    assert data["overview"]["changes"] == 2 and data["overview"]["notices"] == 1
    subject = list(db.query("select subject from digests where subscriber_id is not null "
                            "order by id desc limit 1"))[0]["subject"]
    assert subject == "SPS digest — 1 new paper, 2 trial changes, 1 correction notice (24–30 Nov 2026)"
    # the notice and the changes are not repeated next week
    db.execute("update deliveries set status = 'sent'")
    db.execute("update sent_items set sent_at = ?", [LATER])
    db.conn.commit()
    build_digests(db, config, now="2026-12-07T06:00:00+00:00")
    assert db["digests"].count_where("subscriber_id is not null") == 2


def test_notice_for_a_new_erratum_pointing_at_a_received_paper(db, config):
    seed(db, [paper(21, "Received paper", date="2026-11-01")])
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    sub = list(db["subscribers"].rows)[0]
    with db.atomic():
        db["sent_items"].insert({"subscriber_id": sub["id"], "item_id": "pmid:21", "digest_id": 0, "sent_at": NOW})
    seed(db, [paper(22, "Erratum: Received paper", relevant=0, pub_types=["Published Erratum"],
                    extra={"corrections": [{"type": "ErratumFor", "pmid": "21"}]})])
    pool = Pool(db, "2026-01-01")
    data = build_digest_data(pool, config, sub, "2026-11-16T06:00:00+00:00", NOW, first=False)
    assert [(n["item_id"], n["what"]) for n in data["notices"]] == [("pmid:21", "corrected")]
    assert {k["key"] for k in digest_keys(data)} == {"notice:pmid:21:corrected"}


def test_entry_helpers():
    assert short_authors(["Dalakas MC", "Li M", "Smith J", "Brown K"]) == "Dalakas MC, Li M, … et al."
    assert short_authors(["Dalakas MC", "Li M"]) == "Dalakas MC, Li M"
    assert display_date("2026-11-17") == "17 Nov 2026" and display_date("2026-11") == "Nov 2026"
    case_report = {"kind": "paper", "pub_types": json.dumps(["Journal Article", "Case Reports"])}
    assert evidence_label(case_report) == "Case report"
    phase_2_3 = {"kind": "trial", "extra": json.dumps({"phases": ["PHASE2", "PHASE3"]})}
    assert evidence_label(phase_2_3) == "Phase 2/Phase 3 trial"
    assert (change_text("overall_status", "ACTIVE_NOT_RECRUITING", "COMPLETED")
            == "Status: Active, not recruiting → Completed")
    assert change_text("results_first_posted", "", "2026-11-20") == "Results posted on 20 Nov 2026"
    # the tracked value CT.gov changes carry: no doubled brackets ("(2026-12-05 (actual))")
    assert change_text("results_posted", "", "2026-12-05 (actual)") == "Results posted on 5 Dec 2026"
    assert (change_text("completion_date", "2027-06 (estimated)", "2027-09 (estimated)")
            == "Completion: Jun 2027 (estimated) → Sep 2027 (estimated)")
    assert safe_url("javascript:alert(1)") is None and safe_url("https://x.org/a") == "https://x.org/a"
    assert safe_url("http://x.org/\u202egnp.exe") is None and safe_url("//x.org") is None


def test_window_uses_either_date():
    from bot.digest.entries import in_window
    week = ("2026-11-16", "2026-11-23")
    # indexed this week, print issue dated next year: news now
    assert in_window({"entrez_date": "2026-11-20", "pub_date": "2027-01"}, *week)
    # published this month, indexed late (this week)
    assert in_window({"entrez_date": "2026-11-22", "pub_date": "2026-11-02"}, *week)
    assert in_window({"pub_date": "2026-11"}, *week)  # a month-level date overlapping the week
    assert not in_window({"entrez_date": "2026-10-01", "pub_date": "2026-10"}, *week)
    assert not in_window({"pub_date": "2019", "first_seen": "2026-11-23T06:00:00+00:00"}, *week)
    assert in_window({"pub_date": "2026", "first_seen": "2026-11-23T06:00:00+00:00"}, *week)
    assert in_window({"first_seen": "2026-11-20T06:00:00+00:00"}, *week)  # a feed entry with no date


def test_changes_of_off_topic_trials_and_retracted_publication_notice(db, config):
    relevant, irrelevant = trial("NCT00000011", "SPS trial"), trial("NCT00000012", "CIDP trial")
    irrelevant[1]["relevant"] = 0
    seed(db, [relevant, irrelevant, paper(31, "Later retracted", pub_types=["Retracted Publication"])])
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    sub = list(db["subscribers"].rows)[0]
    with db.atomic():
        db["sent_items"].insert({"subscriber_id": sub["id"], "item_id": "pmid:31", "digest_id": 0, "sent_at": NOW})
        db["trial_changes"].insert_all([
            {"nct_id": nct, "field": "overall_status", "old": "RECRUITING", "new": "TERMINATED", "detected_at": NOW}
            for nct in ("NCT00000011", "NCT00000012")])
    data = build_digest_data(Pool(db, "2026-01-01"), config, sub, "2026-11-16T06:00:00+00:00", NOW, first=False)
    assert [c["nct_id"] for c in data["changes"]] == ["NCT00000011"]
    assert data["changes"][0]["changes"] == ["Status: Recruiting → Terminated"]
    assert [(n["item_id"], n["what"]) for n in data["notices"]] == [("pmid:31", "retracted")]


def test_old_sent_bodies_are_pruned_but_pending_and_public_kept(db, config, monkeypatch):
    seed(db, [paper(1, "A paper")])
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    add_subscriber(db, "bob@example.org", valid_themes=config.theme_names)
    build_digests(db, config)
    db.execute("update deliveries set status = 'sent' where subscriber_id = 1")
    db.conn.commit()
    build_digests(db, config, now="2027-03-01T06:00:00+00:00")  # months later
    rows = {r["subscriber_id"]: r for r in db.query("select subscriber_id, html, data, subject from digests")}
    assert rows[1]["html"] is None and rows[1]["data"] is None and rows[1]["subject"].startswith("SPS digest")
    assert rows[2]["html"] is not None  # still pending: the outbox needs it
    assert rows[None]["data"] is not None  # the public archive issue
    assert db["digest_items"].count_where("digest_id = 1") == 1
