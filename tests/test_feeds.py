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


def test_rss2_pubmed_style_entry_html_flattened_and_ids():
    record = parse_feed(RSS2.encode(), url="https://pubmed.ncbi.nlm.nih.gov/rss/search/1abc/").records[0]
    assert record["title"] == "Efgartigimod in stiff person syndrome: a case series"
    assert record["abstract"] == "We report three patients (trial NCT01234567) with SPS."
    assert record["pmid"] == "39000001"
    assert record["nct_ids"] == ["NCT01234567"]
    assert record["pub_date"] == "2026-11-02"


def _atom(entry: str) -> bytes:
    return f'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><entry>{entry}</entry></feed>'.encode()


def test_plain_text_is_never_tag_stripped():
    record = parse_feed(_atom('<title type="text">History of the &lt;blink&gt; tag: eGFR &lt;30, age &gt;70'
                              '</title><summary type="text">p&lt;0.05 &amp;amp; ≤2 &lt;i&gt;not markup&lt;/i&gt;'
                              '</summary>')).records[0]
    assert record["title"] == "History of the <blink> tag: eGFR <30, age >70"
    assert record["abstract"] == "p<0.05 &amp; ≤2 <i>not markup</i>"   # plain text: nothing decoded twice


def test_html_becomes_its_text_with_a_real_parser():
    record = parse_feed(_atom(
        '<title type="html">Children aged &amp;lt;5 years &lt;!-- a &gt; b --&gt;H&lt;sub&gt;2&lt;/sub&gt;O</title>'
        '<summary type="html">&lt;p&gt;First&lt;/p&gt;&lt;p&gt;second &amp;amp;lt;3&lt;br/&gt;third&lt;/p&gt;'
        '&lt;ul&gt;&lt;li&gt;a&lt;/li&gt;&lt;li&gt;b&lt;/li&gt;&lt;/ul&gt;</summary>')).records[0]
    assert record["title"] == "Children aged <5 years H2O"           # the comment gone whole, <sub> inline
    assert record["abstract"] == "First second &lt;3 third a b"      # blocks → spaces; entities decoded once


def test_xhtml_content_is_flattened_and_rss_description_is_html():
    record = parse_feed(_atom('<title>x</title><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
                              '<p>One</p><p>two &lt;5</p></div></content>')).records[0]
    assert record["abstract"] == "One two <5"
    record = parse_feed(RSS2.replace("We report", "Aged &lt;5: we report").encode()).records[0]
    assert record["abstract"].startswith("Aged <5: we report three patients")


def test_a_channel_with_a_recoverable_error_and_no_items_is_read():
    result = parse_feed(b'<rss version="2.0"><channel><title>Latest &hellip; issue</title></channel></rss>',
                        name="toc")
    assert result.records == [] and result.title == "Latest … issue"
    assert "undefined entity" in result.warning


def test_a_wrong_encoding_declaration_is_read():
    data = '<?xml version="1.0" encoding="x-bogus"?><rss version="2.0"><channel><title>t</title>' \
           '<item><title>Überblick ≥ 5 Jahre</title></item></channel></rss>'
    result = parse_feed(data.encode("utf-8"))
    assert [r["title"] for r in result.records] == ["Überblick ≥ 5 Jahre"] and result.warning


def test_the_charset_the_server_declares_is_used(db, tmp_path):
    body = '<?xml version="1.0"?><rss version="2.0"><channel><title>Журнал</title>' \
           '<item><title>Синдром ригидного человека: доза ≤5 мг</title></item></channel></rss>'
    respond = lambda request: Response(200, body.encode("koi8-r"), "application/rss+xml; charset=koi8-r")  # noqa: E731
    with LocalServer(respond) as server:
        config = make_config(tmp_path, server.url, condition="x", feeds=[{"url": f"{server.url}/rss"}])
        assert fetch_feeds.run(db, config, min_interval=0).counts["new"] == 1
    assert next(db["items"].rows)["title"] == "Синдром ригидного человека: доза ≤5 мг"


@pytest.mark.parametrize("body, why", [
    (b"<html><body>Service Unavailable<p></body>", "mismatched tag"),
    (b"<html><head><title>Oops</title></head><body>Try later</body></html>", "no RSS, RDF or Atom channel"),
    (b"", "no RSS, RDF or Atom channel")])
def test_nothing_readable_is_a_feed_error_of_one_line(body, why):
    with pytest.raises(FeedError) as caught:
        parse_feed(body, url="https://example.org/feed")
    assert str(caught.value).startswith("feed:example.org: not a readable feed") and why in str(caught.value)
    assert "\n" not in str(caught.value)


UNTITLED_RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Clinic news</title>
<item><description>&lt;p&gt;Our &lt;b&gt;SPS&lt;/b&gt; clinic opens on Monday. \
Referrals by e-mail.&lt;/p&gt;</description>
<link>https://clinic.example.org/news/1</link></item>
<item><description>Patients aged &lt;5 years and adults &gt;65 years with stiff person syndrome were \
followed for two years at three centres in Europe and Japan</description></item>
<item><link>https://clinic.example.org/news/3</link></item>
<item><guid isPermaLink="false">nothing-to-show</guid><category>empty</category></item>
</channel></rss>"""


def test_an_untitled_entry_is_titled_with_its_own_text_or_link(db, tmp_path, caplog):
    """Most entries of feedparser's own corpus have no title; their text still reaches the store."""
    import logging
    caplog.set_level(logging.INFO, logger="bot")
    with LocalServer(lambda request: Response(200, UNTITLED_RSS, "application/rss+xml")) as server:
        config = make_config(tmp_path, server.url, condition="x",
                             feeds=[{"url": f"{server.url}/news", "name": "clinic"}])
        counts = fetch_feeds.run(db, config, min_interval=0).counts
    assert counts["new"] == 3 and counts["errors"] == 0
    items = {item["url"]: item for item in db["items"].rows}
    first = items["https://clinic.example.org/news/1"]
    assert first["title"] == "Our SPS clinic opens on Monday."     # the first sentence, markup flattened
    assert first["abstract"] == "Our SPS clinic opens on Monday. Referrals by e-mail."
    assert json.loads(first["extra"])["title_from"] == "summary"
    second = items[None]
    assert second["title"] == ("Patients aged <5 years and adults >65 years with stiff person syndrome were "
                               "followed for …")                # 15 words of the text, marked as cut
    assert second["abstract"].endswith("in Europe and Japan")
    third = items["https://clinic.example.org/news/3"]
    assert third["title"] == "https://clinic.example.org/news/3" and third["abstract"] is None
    assert json.loads(third["extra"])["title_from"] == "link"
    assert "feed:clinic: 3 entries (3 new), 1 skipped (no title, no text, no link)" in caplog.text


def test_untitled_entries_starting_alike_stay_two_items(db):
    """A title made from an entry's first sentence matches no other item by title."""
    opening = "Our stiff person syndrome clinic has news for patients and carers this week."
    rss = f"""<rss version="2.0"><channel><title>Clinic</title>
<item><description>{opening} New opening hours.</description><link>https://c.example/1</link></item>
<item><description>{opening} A new nurse joins.</description><link>https://c.example/2</link></item>
</channel></rss>"""
    records = parse_feed(rss.encode(), name="clinic").records
    assert [r["title"] for r in records] == [opening, opening]
    assert save_items(db, records)["new"] == 2 and db["items"].count == 2


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


CLINICAL_RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Journal TOC &hellip; latest</title>
<item><title>Mortality in children aged &lt;5 years and adults &gt;65 years</title>
<link>https://doi.org/10.1000/mortality.5</link>
<description>eGFR &lt;30 and age &gt;70. HbA1c ≤7% &amp; p&lt;0.05.</description><dc:date>2026-11-20</dc:date></item>
</channel></rss>"""


def test_a_clinical_number_in_a_feed_reaches_the_digest_unchanged(db, tmp_path, monkeypatch):
    """RSS over 127.0.0.1 → the real feed fetch → SQLite → the built digest → SMTP, the public
    archive issue and the CSV export: '<5 years' stays. The channel title's ``&hellip;`` (undefined
    in XML) makes feedparser "bozo"; the feed is read all the same."""
    import csv
    import io

    from bot.config import load_config
    from bot.digest.builder import build_digests
    from bot.digest.send import send_pending
    from bot.digest.subscribers import add_subscriber
    from bot.export import export_records, write_export
    from conftest import SmtpServer
    from digest_support import NOW, paper, parts

    title = "Mortality in children aged <5 years and adults >65 years"
    abstract = "eGFR <30 and age >70. HbA1c ≤7% & p<0.05."
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    with LocalServer(lambda request: Response(200, CLINICAL_RSS, "application/rss+xml")) as feed, \
            SmtpServer() as smtp:
        monkeypatch.setenv("SPSBOT_SMTP_URL", smtp.url)
        path = tmp_path / "spsbot.toml"
        path.write_text("\n".join([
            "[topic]", 'name = "Stiff person syndrome"', 'pubmed_query = "stiff person syndrome"',
            f'feeds = [{{ url = "{feed.url}/toc", name = "journal" }}]',
            "[email]", 'unsubscribe_url = "https://sps.example.org/unsubscribe"']) + "\n", encoding="utf-8")
        config = load_config(path)
        counts = fetch_feeds.run(db, config, min_interval=0).counts
        assert (counts["new"], counts["errors"]) == (1, 0)
        item = next(db["items"].rows)
        assert item["title"] == title and item["abstract"] == abstract
        # The score row as the ranker writes it, its evidence sentence taken from the stored abstract.
        _, score = paper(1, title, sentence=item["abstract"])
        db["scores"].insert({**score, "item_id": item["id"]}, pk="item_id", alter=True)
        add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
        build_digests(db, config)
        assert send_pending(db, config).sent == 1
        [message] = smtp.messages
    text, html = parts(message)
    assert title in text and abstract in text
    escaped = "Mortality in children aged &lt;5 years and adults &gt;65 years"
    assert escaped in html
    assert "eGFR &lt;30 and age &gt;70. HbA1c ≤7% &amp; p&lt;0.05." in html
    public = list(db.query("select html, text from digests where subscriber_id is null"))[0]
    assert title in public["text"] and escaped in public["html"]
    out = io.StringIO()
    write_export(export_records(db), out, "csv")
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert (row["title"], row["abstract"]) == (title, abstract)
