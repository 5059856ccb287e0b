"""``search --live``: the real sources code over HTTP against local replay servers.

PubMed: ``bot.replay.eutils`` serving real efetch records (7 articles); ClinicalTrials.gov:
``bot.replay.ctgov`` serving a real v2 page (3 melanoma studies). Neither is about SPS: the tests
check plumbing (terms sent, merging, saving, a failing source), not relevance.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.config import load_config
from bot.search.live import live_records, merge_live, pubmed_term, save_live
from bot.replay import LocalServer, Response
from bot.replay.ctgov import ctgov_responder
from bot.replay.eutils import eutils_responder
from bot.search.hybrid import Filters, parse_query, search
from bot.sources.pubmed import parse_efetch
from searchkit import seed_store

HERE = Path(__file__).parent / "fixtures" / "search"
ARTICLES = [(HERE / "efetch_science2008_6_articles.xml").read_text(encoding="utf-8"),
            (HERE / "efetch_29768149_rct.xml").read_text(encoding="utf-8")]
STUDIES = json.loads((HERE / "studies_melanoma_recruiting_3.json").read_text(encoding="utf-8"))["studies"]


@pytest.fixture
def servers():
    with LocalServer(eutils_responder(ARTICLES)) as eutils, LocalServer(ctgov_responder(STUDIES)) as ctgov:
        yield eutils, ctgov


def _config(eutils, ctgov):
    return load_config(env={"SPSBOT_EUTILS_URL": eutils.url, "SPSBOT_CTGOV_URL": ctgov.url + "/api/v2"})


def _fast_clients(config):
    from bot.sources import clinicaltrials, pubmed
    return {"pubmed": pubmed.configured_client(config, min_interval=0, backoff=0),
            "clinicaltrials": clinicaltrials.make_client(config.clinicaltrials["base_url"], min_interval=0,
                                                         backoff=0)}


def test_pubmed_term_is_built_from_tokens_and_scoped_to_the_topic():
    parsed = parse_query('rituximab "stiff person" -review OR ivig')
    assert pubmed_term(parsed) == '((rituximab AND "stiff person") OR (ivig)) NOT review'
    assert pubmed_term(parse_query("x[tiab] (y")).startswith("(x tiab")  # field tags and parentheses dropped
    assert pubmed_term(parsed, "TOPIC[mh]").startswith("(TOPIC[mh]) AND ")


def test_live_records_within_topic_and_anywhere(db, servers):
    eutils, ctgov = servers
    config = _config(eutils, ctgov)
    scoped = live_records(config, "melanoma", limit=20, clients=_fast_clients(config))
    assert scoped.errors == {}
    term = eutils.requests[0].param("term")
    assert term.startswith(f"({config.topic.pubmed_query}) AND ") and term.endswith("(melanoma)")
    assert ctgov.requests[0].param("query.cond") == config.topic.ctgov_condition
    assert scoped.trials == []  # no melanoma study is about the topic
    assert len(scoped.pubmed) == 7

    anywhere = live_records(config, "melanoma", limit=20, within_topic=False, clients=_fast_clients(config))
    assert eutils.requests[-2].param("term") == "(melanoma)"
    assert ctgov.requests[-1].param("query.cond") is None
    assert ctgov.requests[-1].param("query.term") == "(melanoma)"
    nct_ids = {r["nct_id"] for r in anywhere.trials}
    assert nct_ids and nct_ids <= {s["protocolSection"]["identificationModule"]["nctId"] for s in STUDIES}


def test_merge_marks_stored_items_and_applies_filters(db, servers):
    eutils, ctgov = servers
    config = _config(eutils, ctgov)
    seed_store(db)
    known = [r for r in parse_efetch(ARTICLES[0].encode()) if r["pmid"] == "18787170"]
    from bot.store import save_items
    save_items(db, known)
    live = live_records(config, "tumor", Filters(since="2008-09-01"), limit=20, within_topic=False,
                        clients=_fast_clients(config))
    assert all((r.get("entrez_date") or "") >= "2008-09" for r in live.pubmed)  # mindate was sent
    assert eutils.requests[0].param("mindate") == "2008/09/01"
    store = search(db, "tumor", Filters(since="2008-09-01"), semantic=False)
    merged = merge_live(db, store, live, Filters(since="2008-09-01"), limit=50)
    by_id = {h["id"]: h for h in merged.hits}
    assert by_id["pmid:18787170"]["origin"] == "store+live"
    assert by_id["pmid:19008416"]["origin"] == "live" and by_id["pmid:19008416"]["labels"] == []
    assert "pmid:18239126" not in by_id or by_id["pmid:18239126"]["date"] >= "2008-09"
    assert all((h["date"] or "") >= "2008-09" for h in merged.hits if h["kind"] == "paper")
    trials_store = search(db, "tumor", Filters(kind="trial"), semantic=False)
    trials_only = merge_live(db, trials_store, live, Filters(kind="trial"), limit=50)
    assert all(h["kind"] == "trial" for h in trials_only.hits)

    counts = save_live(db, live)
    assert counts["new"] == len(live.pubmed) + len(live.trials) - 1  # 18787170 was already stored
    assert db.execute("SELECT count(*) FROM trial_versions").fetchone()[0] == len(live.trials)


def test_cli_live_save_then_found_locally(env_isolated, servers, monkeypatch):
    eutils, ctgov = servers
    monkeypatch.setenv("SPSBOT_EUTILS_URL", eutils.url)
    monkeypatch.setenv("SPSBOT_CTGOV_URL", ctgov.url + "/api/v2")
    runner = CliRunner()
    first = runner.invoke(cli, ["search", "melanoma", "--live", "--anywhere", "--save", "--no-semantic", "--json"])
    assert first.exit_code == 0, first.output
    hits = json.loads(first.stdout)
    assert {h["origin"] for h in hits} == {"live"}
    assert any(h["kind"] == "trial" for h in hits) and any(h["kind"] == "paper" for h in hits)
    assert "saved live results:" in first.stderr

    local = runner.invoke(cli, ["search", "melanoma", "--no-semantic", "--json", "--kind", "trial"])
    stored = json.loads(local.stdout)
    assert stored and {h["origin"] for h in stored} == {"store"}

    again = runner.invoke(cli, ["search", "melanoma", "--live", "--anywhere", "--no-semantic", "--json",
                                "--kind", "trial"])
    assert {h["origin"] for h in json.loads(again.stdout)} == {"store+live"}


def test_cli_live_one_failing_source_still_answers(env_isolated, monkeypatch):
    def broken(request):
        return Response(400, "Bad Request: invalid query", "text/plain")

    with LocalServer(eutils_responder(ARTICLES)) as eutils, LocalServer(broken) as ctgov:
        monkeypatch.setenv("SPSBOT_EUTILS_URL", eutils.url)
        monkeypatch.setenv("SPSBOT_CTGOV_URL", ctgov.url)
        result = CliRunner().invoke(cli, ["search", "breast cancer", "--live", "--anywhere", "--no-semantic"])
    assert result.exit_code == 0, result.output
    assert not (env_isolated / "cli.db").exists()  # a live-only search creates no database
    assert "warning: live clinicaltrials failed:" in result.stderr
    assert "DNA test for breast cancer" in result.output or "Genetics." in result.output
