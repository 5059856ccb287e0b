"""PubMed fetch over real HTTP: the E-utilities emulator on 127.0.0.1, the real fetch code, SQLite."""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from datetime import date, timedelta
from html import escape as html_escape

import pytest
from pubmed_reference import differences, generation_samples, generations, library_records

from bot.config import load_config
from bot.fetch import fetch_all
from bot.fetch import pubmed as fetch_pubmed
from bot.replay import LocalServer, Response
from bot.replay.eutils import RATE_LIMIT_BODY, clone_article, eutils_responder, load_articles
from bot.sources import pubmed
from bot.sources.http import SourceError
from bot.store import get_state

END = "2026/11/20"


def no_sleep(seconds):
    pass


@pytest.fixture
def articles(fixtures):
    """Every real PubmedArticle/PubmedBookArticle of the recorded efetch fixtures (34 distinct PMIDs)."""
    return load_articles(sorted(str(p.read_text(encoding="utf-8"))
                                for p in (fixtures / "pubmed").glob("efetch_*.xml")))


@contextmanager
def eutils(articles, batch_size=7, env=None, **options):
    responder = eutils_responder(articles, **options)
    with LocalServer(responder) as server:
        config = load_config(env={"SPSBOT_EUTILS_URL": server.url + "/entrez/eutils",
                                  "NCBI_EMAIL": "curator@example.org", **(env or {})})
        config.sections["sources.pubmed"]["batch_size"] = batch_size
        yield server, config, responder


def endpoint_requests(server, name):
    return [r for r in server.requests if r.path.endswith(f"/{name}.fcgi")]


def test_backfill_pages_through_webenv(db, articles):
    with eutils(articles) as (server, config, responder):
        counts = fetch_pubmed.run(db, config, sleep=no_sleep, window_end=END).counts
    assert counts["fetched"] == counts["new"] == 34 == db["items"].count
    assert (counts["batches"], counts["errors"], counts["requests"]) == (5, 0, 6)
    [search] = endpoint_requests(server, "esearch")
    # the window is on the create date, as a [crdt] range in the term (no datetype parameter)
    assert {k: search.param(k) for k in ("db", "usehistory", "datetype", "mindate", "maxdate")} == {
        "db": "pubmed", "usehistory": "y", "datetype": None, "mindate": None, "maxdate": None}
    assert search.param("term") == f"({config.topic.pubmed_query}) AND 1950/01/01:{END}[crdt]"
    fetches = endpoint_requests(server, "efetch")
    [(webenv, query_key)] = list(responder.histories)
    assert [(f.param("WebEnv"), f.param("query_key")) for f in fetches] == [(webenv, query_key)] * 5
    assert [(f.param("retstart"), f.param("retmax")) for f in fetches] == [
        ("0", "7"), ("7", "7"), ("14", "7"), ("21", "7"), ("28", "6")]
    assert all(r.param("tool") == "spsbot" and r.param("email") == "curator@example.org" for r in server.requests)
    row = db["items"].get("pmid:29768149")
    assert json.loads(row["nct_ids"]) == ["NCT02149199"] and row["entrez_date"] == "2018-05-17"
    assert get_state(db, "pubmed", config.topic.pubmed_query)["window_end"] == END


def test_next_run_overlaps_the_previous_window(db, articles):
    with eutils(articles) as (server, config, _):
        fetch_pubmed.run(db, config, sleep=no_sleep, window_end=END)
        counts = fetch_pubmed.run(db, config, sleep=no_sleep, window_end="2026/11/27").counts
        searches = endpoint_requests(server, "esearch")
    # 2026/11/20 minus overlap_days = 3, on the create date
    assert searches[1].param("term").endswith(") AND 2026/11/17:2026/11/27[crdt]")
    assert counts["window"] == "2026/11/17-2026/11/27"
    assert get_state(db, "pubmed", config.topic.pubmed_query)["window_end"] == "2026/11/27"


def test_full_refetch_is_idempotent(db, articles, monkeypatch):
    with eutils(articles) as (_, config, _):
        monkeypatch.setenv("SPSBOT_NOW", "2026-11-20T06:00:00+00:00")
        fetch_pubmed.run(db, config, sleep=no_sleep, window_end=END)
        before = {r["id"]: r for r in db["items"].rows}
        monkeypatch.setenv("SPSBOT_NOW", "2026-11-27T06:00:00+00:00")
        counts = fetch_pubmed.run(db, config, full=True, sleep=no_sleep, window_end=END).counts
        after = {r["id"]: r for r in db["items"].rows}
    assert (counts["fetched"], counts["new"], counts["updated"], counts["unchanged"]) == (34, 0, 0, 34)
    assert set(before) == set(after)
    for item_id, row in after.items():
        assert row["last_seen"] == "2026-11-27T06:00:00+00:00"
        assert {k: v for k, v in row.items() if k != "last_seen"} == {
            k: v for k, v in before[item_id].items() if k != "last_seen"}


def test_rate_limit_and_server_errors_are_retried(db, articles):
    sleeps = []
    script = {"esearch": [Response(429, RATE_LIMIT_BODY, "application/json")],
              "efetch": [Response(503, "Service unavailable", "text/plain"),
                         Response(429, RATE_LIMIT_BODY, "application/json", headers={"Retry-After": "2"})]}
    with eutils(articles, script=script) as (server, config, _):
        counts = fetch_pubmed.run(db, config, sleep=sleeps.append, window_end=END).counts
    assert counts["fetched"] == 34 and counts["errors"] == 0
    assert counts["requests"] == len(server.requests) == 9   # 1 + 1 retried esearch, 5 + 2 retried efetch
    assert 2.0 in sleeps and 1.0 in sleeps                   # Retry-After, then the backoff


def test_request_spacing_on_recorded_timestamps(db, articles):
    class Clock:
        now = 0.0

        def __call__(self):
            return self.now

        def sleep(self, seconds):
            self.now += seconds

    clock = Clock()
    with eutils(articles) as (_, config, _):
        client = pubmed.configured_client(config, env={}, sleep=clock.sleep, clock=clock)
        fetch_pubmed.run(db, config, client=client, window_end=END)
    stamps = client.sent_at
    assert len(stamps) == 6
    assert all(b - a >= 0.34 - 1e-9 for a, b in zip(stamps, stamps[1:]))
    assert max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps) <= 3   # ≤ 3 requests per second


def test_api_key_is_sent_by_post_spaced_for_ten_per_second_and_never_stored(db, articles, caplog):
    caplog.set_level(logging.DEBUG, logger="bot")
    with eutils(articles, env={}) as (server, config, _):
        client = pubmed.configured_client(config, env={"NCBI_API_KEY": "k3y-SECRET"}, sleep=no_sleep)
        assert client.min_interval == pubmed.INTERVAL_WITH_KEY == 0.1
        result = fetch_all(db, config, ["pubmed"], pubmed={"client": client, "window_end": END})
    assert result.counts["pubmed"]["fetched"] == 34
    assert all(r.param("api_key") == "k3y-SECRET" and "api_key" not in r.query for r in server.requests)
    assert pubmed.configured_client(config, env={}).min_interval == pubmed.INTERVAL_NO_KEY == 0.34
    dump = "\n".join(db.iterdump())
    assert "k3y-SECRET" not in dump and "k3y-SECRET" not in caplog.text


def test_a_window_above_the_limit_is_split_not_truncated(db, articles, monkeypatch):
    monkeypatch.setattr(pubmed, "SEARCH_LIMIT", 10)
    with eutils(articles, page_limit=10) as (server, config, _):
        counts = fetch_pubmed.run(db, config, sleep=no_sleep, window_end=END).counts
        searches = endpoint_requests(server, "esearch")
        fetches = endpoint_requests(server, "efetch")
    assert counts["fetched"] == counts["new"] == 34 and counts["errors"] == 0
    assert len(searches) > 4                                  # the whole window, then halves
    assert all(int(f.param("retstart")) + int(f.param("retmax")) <= 10 for f in fetches)
    assert searches[0].param("term").endswith(f" AND 1950/01/01:{END}[crdt]")


def test_a_single_day_above_the_limit_is_an_error(articles):
    day = date(2026, 5, 1)
    many = [clone_article(articles[0], 90000000 + i, day) for i in range(5)]
    with eutils(many) as (server, config, _):
        client = pubmed.configured_client(config, env={}, min_interval=0)
        with pytest.raises(SourceError, match="cannot split further"):
            pubmed.plan_windows(client, "x", "2026/04/01", "2026/06/30", limit=3)


def test_split_windows_cover_every_day_once(articles):
    days = [date(2026, 1, 1) + timedelta(days=3 * i) for i in range(30)]
    many = [clone_article(articles[0], 91000000 + i, d) for i, d in enumerate(days)]
    with eutils(many) as (server, config, _):
        client = pubmed.configured_client(config, env={}, min_interval=0)
        windows = pubmed.plan_windows(client, "x", "2026/01/01", "2026/12/31", limit=4)
    assert sum(w.count for w in windows) == 30 and all(w.count <= 4 for w in windows)
    spans = [(pubmed.parse_edate(w.mindate), pubmed.parse_edate(w.maxdate)) for w in windows]
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))   # disjoint, in date order


BROKEN = ('<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
          '1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
          '<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMI')


def test_a_malformed_answer_is_fetched_again_in_halves_and_nothing_is_lost(db, articles):
    with eutils(articles, script={"efetch": [Response(200, BROKEN)]}) as (server, config, _):
        result = fetch_all(db, config, ["pubmed"], pubmed={"sleep": no_sleep, "window_end": END})
        fetches = endpoint_requests(server, "efetch")
    counts = result.counts["pubmed"]
    assert (counts["errors"], counts["fetched"], counts["quarantined"]) == (0, 34, 0) and db["items"].count == 34
    # the first batch (retstart 0, 7 records) was asked for again as 0+3 and 3+4
    assert [(f.param("retstart"), f.param("retmax")) for f in fetches[:3]] == [("0", "7"), ("0", "3"), ("3", "4")]
    assert get_state(db, "pubmed", config.topic.pubmed_query)["window_end"] == END


def test_an_answer_broken_every_time_is_a_batch_error_and_the_window_kept(db, articles):
    with eutils(articles, script={"efetch": [Response(200, BROKEN)] * 200}) as (server, config, _):
        result = fetch_all(db, config, ["pubmed"], pubmed={"sleep": no_sleep, "window_end": END})
        fetches = endpoint_requests(server, "efetch")
    counts = result.counts["pubmed"]
    # not 34 records quarantined and the window moved on: a broken answer is not a bad record
    assert counts["errors"] == 5 and counts["fetched"] == 0 and db["quarantine"].count == 0
    assert len(fetches) <= 5 * 6                          # halving stops once the answer is clearly broken
    assert get_state(db, "pubmed", config.topic.pubmed_query) is None   # next run reads the window again
    run = list(db["runs"].rows)[-1]
    assert run["status"] == "partial" and "broken" in run["error"]


def test_esearch_error_fails_the_source_and_is_recorded(db, articles, caplog):
    error = Response(200, '<?xml version="1.0" encoding="UTF-8" ?>\n<eSearchResult><ERROR>Invalid query syntax'
                          '</ERROR></eSearchResult>')
    with eutils(articles, script={"esearch": [error]}) as (_, config, _):
        result = fetch_all(db, config, ["pubmed"], pubmed={"sleep": no_sleep, "window_end": END})
    assert "Invalid query syntax" in result.errors["pubmed"] and result.status == "failed"
    run = list(db["runs"].rows)[-1]
    assert run["status"] == "failed" and "Invalid query syntax" in run["error"]
    assert db["items"].count == 0 and "Invalid query syntax" in caplog.text


def test_phrase_not_found_is_zero_results_with_a_warning(db, articles, fixtures, caplog):
    zero = Response(200, (fixtures / "pubmed" / "esearch_biopython_esearch8_pubmed_zero_results_errorlist_"
                                                 "phrasenotfound.xml").read_bytes())
    with eutils(articles, script={"esearch": [zero]}) as (_, config, _):
        counts = fetch_pubmed.run(db, config, sleep=no_sleep, window_end=END).counts
    assert counts["fetched"] == 0 and counts["requests"] == 1
    assert "PhraseNotFound: abcXYZ" in caplog.text
    assert get_state(db, "pubmed", config.topic.pubmed_query)["window_end"] == END


def test_expired_webenv_is_a_batch_error(db, articles):
    with eutils(articles) as (server, config, responder):
        client = pubmed.configured_client(config, env={}, min_interval=0)
        [window] = pubmed.plan_windows(client, "x", "1950/01/01", END)
        responder.histories.clear()
        [batch, *_] = pubmed.fetch_batches(client, [window], 500)
    assert batch.records == [] and "Unable to obtain query" in batch.error


def test_fetch_by_id_list(articles):
    with eutils(articles) as (server, config, _):
        client = pubmed.configured_client(config, env={}, min_interval=0)
        body = client.request("efetch.fcgi", method="POST", data={"db": "pubmed", "id": "29768149,219391",
                                                                   "retmode": "xml"}).content
    assert sorted(r["pmid"] for r in pubmed.parse_efetch(body)) == ["219391", "29768149"]


@pytest.mark.parametrize("base_url, configured, api_key, expected", [
    ("https://eutils.ncbi.nlm.nih.gov/entrez/eutils", None, "", 0.34),    # NCBI: 3 requests/s
    ("https://eutils.ncbi.nlm.nih.gov/entrez/eutils", None, "k", 0.1),    # 10/s with a key
    ("https://eutils.ncbi.nlm.nih.gov/entrez/eutils", 1.0, "", 1.0),      # politer is always fine
    ("https://eutils.ncbi.nlm.nih.gov/entrez/eutils", 0.0, "", 0.34),     # faster than NCBI allows: no
    ("http://127.0.0.1:8080/entrez/eutils", 0.0, "", 0.0),               # a local replay server: yes
])
def test_request_spacing_honours_ncbi_limits_except_for_a_local_replay(base_url, configured, api_key, expected):
    from bot.config import load_config
    from bot.sources.pubmed import configured_client
    config = load_config(env={"SPSBOT_EUTILS_URL": base_url})
    if configured is not None:
        config.sections["sources.pubmed"]["min_interval"] = configured
    assert configured_client(config, env={"NCBI_API_KEY": api_key}).min_interval == expected


def test_a_record_with_an_illegal_character_reference_is_stored_cleaned_with_a_note_and_delivered(db, articles):
    """Issue 21: one `&#x1;` in an abstract used to cost the record (held and asked for again
    every run, forever); it is stored without that character, with a note saying so."""
    [clean] = [a for a in articles if ">219391</PMID>" in a]
    bad = clean.replace("<AbstractText>Peripheral blood", "<AbstractText>Peripheral&#x1; blood", 1)
    assert bad != clean
    served = [a for a in articles if a is not clean] + [bad]
    with eutils(served) as (server, config, _):
        counts = fetch_all(db, config, ["pubmed"], pubmed={"sleep": no_sleep, "window_end": END}).counts["pubmed"]
        fetches = endpoint_requests(server, "efetch")
    assert (counts["fetched"], counts["repaired"], counts["quarantined"], counts["errors"]) == (34, 1, 0, 0)
    assert len(fetches) == 5                                     # no halving: the batch was salvaged whole
    assert db["quarantine"].count == 0
    row = db["items"].get("pmid:219391")
    [expected] = pubmed.parse_efetch(pubmed.offline_xml(clean.encode()))
    assert row["abstract"] == expected["abstract"] and "\x01" not in row["abstract"]
    assert row["abstract"].startswith("Peripheral blood and bone marrow")
    assert json.loads(row["extra"])["repaired"] == ["removed the character reference &#x1; from AbstractText"]
    # the next run does not ask for it again (nothing is held) ...
    with eutils(served) as (server, config, _):
        fetch_all(db, config, ["pubmed"], pubmed={"sleep": no_sleep, "window_end": "2026/11/21"})
        assert not [r for r in endpoint_requests(server, "efetch") if r.param("id")]
    # ... and it reaches the reader
    keys, html, text = delivered(db, config, "pmid:219391")
    assert keys == ["pmid:219391"]
    assert "Spielmeyer-Vogt" in html and "Spielmeyer-Vogt" in text and "\x01" not in html + text


def delivered(db, config, item_id: str) -> tuple[list[str], str, str]:
    """Score ``item_id`` relevant (as the ranker writes it), build the week's digest for one
    subscriber and render it: (the digest's item keys, HTML, text)."""
    from bot.digest.builder import build_digests
    from bot.digest.render import render_digest
    from bot.digest.subscribers import add_subscriber
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    with db.atomic():
        db["scores"].upsert({"item_id": item_id, "relevance": 0.9, "relevant": 1,
                             "themes": json.dumps({"symptomatic": 0.8}), "labels": json.dumps(["symptomatic"]),
                             "why": "about SPS", "evidence": json.dumps({})}, pk="item_id", alter=True)
        db["items"].update(item_id, {"entrez_date": "2026-11-19", "create_date": "2026-11-19"})
    build_digests(db, config, now="2026-11-21T07:00:00+00:00")
    data = json.loads(list(db.query("select data from digests where subscriber_id = 1"))[0]["data"])
    _, html, text = render_digest(data, config, None)
    return [i["key"] for section in data["sections"] for i in section["items"]], html, text


def test_medical_text_with_less_than_signs_reaches_the_digest_as_written(db, articles):
    """Issue 21: `&lt;5 years`, `p&lt;0.05`, `≥`, `&amp;` in a PubMed title and abstract are text,
    not markup: stored and mailed as written (only the real <i> markup is flattened)."""
    [clean] = [a for a in articles if ">219391</PMID>" in a]
    title = "Mortality in children aged <5 years and adults >65 years: p<0.05, eGFR <30 & age ≥70 (n = 12)"
    medical = re.sub(r"<ArticleTitle>.*?</ArticleTitle>", "<ArticleTitle>Mortality in children aged &lt;5 years and "
                     "adults &gt;65 years: p&lt;0.05, eGFR &lt;30 &amp; age ≥70 (<i>n</i> = 12)</ArticleTitle>", clean)
    medical = medical.replace("<AbstractText>Peripheral blood", "<AbstractText>In &lt;5% (p&lt;0.05) peripheral blood")
    with eutils([a for a in articles if a is not clean] + [medical]) as (server, config, _):
        fetch_all(db, config, ["pubmed"], pubmed={"sleep": no_sleep, "window_end": END})
    row = db["items"].get("pmid:219391")
    assert row["title"] == title and row["abstract"].startswith("In <5% (p<0.05) peripheral blood and bone marrow")
    keys, html, text = delivered(db, config, "pmid:219391")
    assert keys == ["pmid:219391"] and title in text
    assert html_escape(title, quote=False) in html


@pytest.mark.parametrize("generation", generations())
def test_an_answer_of_every_dtd_generation_is_read_whole_over_http(articles, generation):
    """Issue 21: the fetch path reads what NLM served under each DTD generation (an http DTD URL
    up to 2015, the set as a list, a plain-text abstract up to 2010) as Biopython itself does."""
    body = dict(generation_samples())[generation]
    expected = library_records(body)
    with eutils(articles, script={"efetch": [Response(200, body)]}) as (server, config, _):
        client = pubmed.configured_client(config, env={}, min_interval=0)
        [batch] = pubmed.fetch_by_ids(client, [r["pmid"] for r in expected])
    assert batch.error is None and not batch.quarantined and batch.requests == 1
    assert [r["pmid"] for r in batch.records] == [r["pmid"] for r in expected]
    assert all(differences(mine, theirs) == [] for mine, theirs in zip(batch.records, expected))
