"""RSS/Atom feeds: parsing real feeds, fetching over 127.0.0.1, and one item per paper."""

import json

import pytest

from bot.fetch import feeds as fetch_feeds
from bot.replay import LocalServer, Response
from bot.sources.feeds import FeedError, parse_feed
from bot.store import get_item, save_items
from ctgov_helpers import make_config

RSS2 = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>stiff person syndrome - Search Results in PubMed</title>
<link>https://pubmed.ncbi.nlm.nih.gov/rss/search/1abc/</link>
<description>stiff person syndrome: Latest results from PubMed</description>
<item>
  <title>Efgartigimod in &lt;i&gt;stiff person&lt;/i&gt; syndrome: a case series</title>
  <link>https://pubmed.ncbi.nlm.nih.gov/39000001/?utm_source=rss</link>
  <description>&lt;p&gt;We report three patients (trial NCT01234567) \
with &lt;b&gt;SPS&lt;/b&gt;.&lt;/p&gt;</description>
  <dc:creator>Jane Roe</dc:creator>
  <dc:creator>John Doe</dc:creator>
  <dc:date>2026-11-02</dc:date>
  <dc:identifier>pmid:39000001</dc:identifier>
  <dc:identifier>doi:10.1002/ANA.99999</dc:identifier>
  <guid isPermaLink="false">pubmed:39000001</guid>
</item>
</channel></rss>"""


def _read(fixtures, name):
    return (fixtures / "rss" / name).read_bytes()


def test_rss1_rdf_with_dc_and_prism(fixtures):
    result = parse_feed(_read(fixtures, "rss1_rdf_journal_of_pediatrics.xml"), url="https://www.jpeds.com/rss",
                        name="jpeds")
    assert result.source == "feed:jpeds" and len(result.records) == 1
    record = result.records[0]
    assert record["kind"] == "paper" and record["source"] == "feed:jpeds"
    assert record["doi"] == "10.1016/j.jpeds.2018.08.009"  # dc:identifier without a "doi:" prefix
    assert record["title"].startswith("HIV Exposure and Formula Feeding Predict Under-2 Mortality")
    assert record["journal"] == "The Journal of Pediatrics"
    assert record["pub_date"] == "2018-10-11" and record["pub_year"] == 2018
    assert record["authors"][:2] == ["Gbolahan Ajibola", "Jean Leidner"] and len(record["authors"]) == 13
    assert record["abstract"].startswith("To prospectively assess")
    assert record["pmid"] is None and record["pub_types"] == []


def test_atom_arxiv_feed(fixtures):
    result = parse_feed(_read(fixtures, "atom_arxiv_cs_ai.xml"), url="http://rss.arxiv.org/atom/cs.AI")
    assert result.source == "feed:rss.arxiv.org" and len(result.records) == 7
    first = result.records[0]
    assert first["extra"]["arxiv_id"] == "2508.13426"
    assert first["doi"] == "10.48550/arxiv.2508.13426"
    assert first["abstract"].startswith("As large language models")  # "arXiv:… Announce Type" prefix gone
    assert first["authors"] == ["Chunhua Liu", "Kabir Manandhar Shrestha", "Sukai Huang"]
    assert first["pub_date"] == "2025-08-20" and first["pub_types"] == ["Preprint"]
    assert first["url"] == "https://arxiv.org/abs/2508.13426"


def test_rss2_pubmed_style_entry_html_stripped_and_ids():
    record = parse_feed(RSS2.encode(), url="https://pubmed.ncbi.nlm.nih.gov/rss/search/1abc/").records[0]
    assert record["title"] == "Efgartigimod in stiff person syndrome: a case series"
    assert record["abstract"] == "We report three patients (trial NCT01234567) with SPS."
    assert record["pmid"] == "39000001"
    assert record["nct_ids"] == ["NCT01234567"]
    assert record["pub_date"] == "2026-11-02"


def test_broken_xml_without_entries_is_a_feed_error():
    with pytest.raises(FeedError):
        parse_feed(b"<html><body>Service Unavailable<p></body>", url="https://example.org/feed")


def test_feed_item_then_pubmed_record_is_one_item_with_both_sources(db, fixtures):
    feed_record = parse_feed(_read(fixtures, "rss1_rdf_journal_of_pediatrics.xml"), name="jpeds").records[0]
    save_items(db, [feed_record])
    pubmed_shaped = {"kind": "paper", "source": "pubmed", "pmid": "30244001", "doi": "10.1016/J.JPEDS.2018.08.009",
                     "title": feed_record["title"], "abstract": "OBJECTIVE: To prospectively assess …",
                     "authors": ["Ajibola G", "Leidner J"], "journal": "J Pediatr"}
    counts = save_items(db, [pubmed_shaped])
    assert counts["new"] == 0 and db["items"].count == 1
    item = next(db["items"].rows)
    assert json.loads(item["sources"]) == ["feed:jpeds", "pubmed"]
    assert item["pmid"] == "30244001" and item["journal"] == "J Pediatr"
    # The feed seen again never overwrites what PubMed said.
    save_items(db, [feed_record])
    assert get_item(db, item["id"])["journal"] == "J Pediatr" and db["items"].count == 1


def test_feed_item_matches_by_title_when_it_has_no_ids(db):
    save_items(db, [{"kind": "paper", "source": "pubmed", "pmid": "1",
                     "title": "Stiff person syndrome: a long title here", "authors": ["Dalakas MC"]}])
    feed = {"kind": "paper", "source": "feed:x", "title": "Stiff-Person Syndrome — a long title here!",
            "authors": ["Marinos C. Dalakas"]}
    assert save_items(db, [feed])["new"] == 0 and db["items"].count == 1


def test_preprint_then_published_version_is_one_item_keeping_both_dois(db):
    title = "Glycine receptor antibodies in progressive encephalomyelitis with rigidity"
    preprint = {"kind": "paper", "source": "feed:medrxiv", "doi": "10.1101/2026.01.01.123456", "title": title,
                "authors": ["Ana Pérez", "B Chen"], "pub_types": ["Preprint"]}
    published = {"kind": "paper", "source": "pubmed", "pmid": "41000000", "doi": "10.1212/NXI.0000000000009999",
                 "title": title, "authors": ["Pérez A", "Chen B"]}
    save_items(db, [preprint])
    assert save_items(db, [published])["new"] == 0
    item = next(db["items"].rows)
    assert item["doi"] == "10.1212/NXI.0000000000009999"
    assert json.loads(item["extra"])["other_dois"] == ["10.1101/2026.01.01.123456"]
    # the preprint seen again in its feed still finds the same item
    assert save_items(db, [preprint])["new"] == 0 and db["items"].count == 1


def test_same_title_other_doi_and_other_first_author_stays_two_items(db):
    title = "Stiff person syndrome: clinical features and outcome"
    save_items(db, [{"kind": "paper", "source": "pubmed", "pmid": "1", "doi": "10.1/a", "title": title,
                     "authors": ["Smith J"]}])
    save_items(db, [{"kind": "paper", "source": "pubmed", "pmid": "2", "doi": "10.1/b", "title": title,
                     "authors": ["Tanaka K"]}])
    assert db["items"].count == 2


def test_run_reads_every_feed_and_a_failing_feed_does_not_stop_the_others(db, tmp_path, fixtures):
    def respond(request):
        if request.path == "/rdf":
            return Response(200, _read(fixtures, "rss1_rdf_journal_of_pediatrics.xml"), "application/rdf+xml")
        if request.path == "/atom":
            return Response(200, _read(fixtures, "atom_arxiv_cs_ai.xml"), "application/atom+xml")
        if request.path == "/rss/search/1abc/":
            return Response(200, RSS2, "application/rss+xml")
        if request.path == "/broken":
            return Response(200, "<html>not a feed<p>", "text/html")
        return Response(404, "gone", "text/plain")
    with LocalServer(respond) as server:
        feeds = [{"url": f"{server.url}/rdf", "name": "jpeds"}, {"url": f"{server.url}/missing", "name": "gone"},
                 {"url": f"{server.url}/atom", "name": "arxiv"}, {"url": f"{server.url}/broken", "name": "broken"},
                 {"url": f"{server.url}/rss/search/1abc/?limit=20", "name": "pubmed-rss"}]
        config = make_config(tmp_path, server.url, condition="x", feeds=feeds)
        result = fetch_feeds.run(db, config, min_interval=0, backoff=0)
        counts = result.counts
        paths = [r.path for r in server.requests]
        assert server.requests[-1].param("limit") == "20"
    assert paths == ["/rdf", "/missing", "/atom", "/broken", "/rss/search/1abc/"]  # trailing slash kept
    assert counts["feeds"] == 5 and counts["errors"] == 2 and result.status == "partial"
    assert counts["fetched"] == 1 + 7 + 1 and counts["new"] == 9
    assert any("gone" in e and "404" in e for e in counts["feed_errors"])
    assert any("broken" in e for e in counts["feed_errors"])
    assert result.problems == counts["feed_errors"] and result.error is None  # runs.error stays empty
    sources = {json.loads(r["sources"])[0] for r in db["items"].rows}
    assert sources == {"feed:jpeds", "feed:arxiv", "feed:pubmed-rss"}


def test_run_fails_when_every_feed_fails(db, tmp_path):
    from bot.sources.http import SourceError
    with LocalServer(lambda request: Response(404, "gone", "text/plain")) as server:
        config = make_config(tmp_path, server.url, condition="x", feeds=[{"url": f"{server.url}/a"}])
        with pytest.raises(SourceError, match="all 1 feeds failed"):
            fetch_feeds.run(db, config, min_interval=0, backoff=0)


def test_fetch_all_marks_the_feeds_run_partial_when_one_feed_fails(db, tmp_path, fixtures):
    from bot.fetch import fetch_all

    def respond(request):
        if request.path == "/rdf":
            return Response(200, _read(fixtures, "rss1_rdf_journal_of_pediatrics.xml"), "application/rdf+xml")
        return Response(500, "down", "text/plain")
    with LocalServer(respond) as server:
        config = make_config(tmp_path, server.url, condition="x",
                             feeds=[{"url": f"{server.url}/rdf"}, {"url": f"{server.url}/down", "name": "down"}])
        result = fetch_all(db, config, ["feeds"], feeds={"min_interval": 0, "backoff": 0})
        assert len([r for r in server.requests if r.path == "/down"]) == 5  # retried, then given up
    assert result.counts["feeds"]["new"] == 1
    run = next(db["runs"].rows)
    assert run["source"] == "feeds" and run["status"] == "partial"
    assert "feed:down" in json.loads(run["counts"])["feed_errors"][0]


def test_feed_then_real_pubmed_parser_record_is_one_item(db, tmp_path, fixtures):
    """A journal feed announces a paper; later the real PubMed parser's record of it arrives."""
    from bot.sources.pubmed import parse_batch
    pubmed = parse_batch((fixtures / "pubmed" / "efetch_hawc_efetch_21813142_doi.xml").read_bytes()).records[0]
    assert pubmed["doi"]
    rss = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:prism="http://prismstandard.org/namespaces/basic/2.0/"><channel><title>Journal TOC</title>
<item><title>{pubmed['title'].upper()}</title><link>https://doi.org/{pubmed['doi'].upper()}</link>
<description>Announced before indexing.</description></item></channel></rss>"""
    with LocalServer(lambda request: Response(200, rss, "application/rss+xml")) as server:
        config = make_config(tmp_path, server.url, condition="x", feeds=[{"url": f"{server.url}/toc", "name": "toc"}])
        assert fetch_feeds.run(db, config, min_interval=0).counts["new"] == 1
    assert save_items(db, [pubmed], source="pubmed")["new"] == 0
    item = next(db["items"].rows)
    assert db["items"].count == 1 and json.loads(item["sources"]) == ["feed:toc", "pubmed"]
    assert item["id"] == f"doi:{pubmed['doi'].lower()}" and item["pmid"] == pubmed["pmid"]
    assert item["title"] == pubmed["title"]  # PubMed's text wins over the feed's
