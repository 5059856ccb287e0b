"""Medical text full of ``<``, ``>``, ``≤``, ``&``, ``p<0.05``, ``<5 years`` reaches every reader
exactly: fetched from ClinicalTrials.gov (a real v2 record served by a local registry, its summary
markdown-escaped as the API sends it), stored, put in the digest's HTML and text parts (and the
sent message), on the public issue page and the search page, and in the CSV export.

The samples live in ``tests/medical_text.py``; each path that stores text is one entry of
``PATHS`` (a function storing every sample through it, and the abstract it must then hold), and
every check after the store runs over every path: ClinicalTrials.gov, a feed (an Atom feed served
on 127.0.0.1, its title plain text and its summary HTML) and PubMed (efetch XML from the
E-utilities emulator), each read by the real fetch code.
"""

import copy
import csv
import email
import html
import io
import json
import re
from datetime import date
from email import policy
from xml.sax.saxutils import escape as xml_escape

import pytest

from bot.config import load_config
from bot.digest.builder import build_digests, preview_digest
from bot.digest.entries import item_links
from bot.export import export_records, write_csv
from bot.fetch import clinicaltrials as fetch_ctgov
from bot.fetch import feeds as fetch_feeds
from bot.fetch import pubmed as fetch_pubmed
from bot.replay import LocalServer, Response
from bot.replay.ctgov import ctgov_responder
from bot.replay.eutils import clone_article, eutils_responder
from bot.store import open_db
from bot.web.app import create_app
from conftest import FIXTURES, FakeEmbedder
from ctgov_helpers import make_config, study
from digest_support import NOW, parts
from medical_text import SAMPLES, assert_html_shows, assert_link_says, markdown_escaped, query_word, text_entry
from web_support import web_config


def nct_id(index: int) -> str:
    return f"NCT0990{index:04d}"


def registry_study(index: int, sample: str) -> dict:
    """A real v2 record (NCT02576665) renamed, titled with the sample, and summarised with it as a
    paragraph and a list item — markdown-escaped, as the API serves markup fields."""
    record = copy.deepcopy(study("NCT02576665"))
    proto = record["protocolSection"]
    proto["identificationModule"]["nctId"] = nct_id(index)
    proto["identificationModule"]["briefTitle"] = sample
    proto["descriptionModule"] = {"briefSummary": f"{markdown_escaped(sample)}\n\n* {markdown_escaped(sample)}"}
    proto["conditionsModule"] = {"conditions": ["Stiff-Person Syndrome"]}
    status = proto["statusModule"]
    status["studyFirstPostDateStruct"] = status["lastUpdatePostDateStruct"] = {"date": "2026-11-19", "type": "ACTUAL"}
    return record


def via_clinicaltrials(db, folder) -> list[str]:
    """Every sample as a trial fetched by the real ClinicalTrials.gov code from a local registry;
    the item ids, in SAMPLES order."""
    studies = [registry_study(i, s) for i, s in enumerate(SAMPLES)]
    with LocalServer(ctgov_responder(studies)) as server:
        counts = fetch_ctgov.run(db, make_config(folder, server.url, condition="Stiff-Person Syndrome")).counts
    assert counts["new"] == len(SAMPLES) and counts["quarantined"] == 0
    return [f"nct:{nct_id(i)}" for i in range(len(SAMPLES))]


def atom_feed() -> str:
    """Every sample as an Atom entry: the title plain text, the summary HTML (the sample escaped
    once more inside it), each under its own DOI and author, dated in the digest's week."""
    entries = "".join(
        f'<entry><id>urn:sample:{i}</id><title type="text">{xml_escape(s)}</title>'
        f'<summary type="html">{xml_escape("<p>" + html.escape(s) + "</p>")}</summary>'
        f'<link href="https://doi.org/10.5555/feed.{i}"/><author><name>Ana Feedwriter</name></author>'
        f"<updated>2026-11-20T08:00:00Z</updated></entry>" for i, s in enumerate(SAMPLES))
    return f'<feed xmlns="http://www.w3.org/2005/Atom"><title>Journal TOC</title>{entries}</feed>'


def via_feed(db, folder) -> list[str]:
    """Every sample as a feed entry read by the real feed code from a local server."""
    with LocalServer(lambda request: Response(200, atom_feed(), "application/atom+xml")) as server:
        config = make_config(folder, server.url, feeds=[{"url": f"{server.url}/toc", "name": "journal"}])
        counts = fetch_feeds.run(db, config, min_interval=0).counts
    assert (counts["new"], counts["errors"]) == (len(SAMPLES), 0)
    return [f"doi:10.5555/feed.{i}" for i in range(len(SAMPLES))]


def pubmed_article(index: int, sample: str) -> str:
    """A real efetch record (PMID 21813142) under a new PMID and DOI, created in the digest's
    week, its title and abstract the sample (XML-escaped, as PubMed serves text)."""
    real = (FIXTURES / "pubmed" / "efetch_hawc_efetch_21813142_doi.xml").read_text(encoding="utf-8")
    article = clone_article(real[real.index("<PubmedArticle>"):real.index("</PubmedArticle>") + 16],
                            pubmed_id(index), date(2026, 11, 19))
    article = re.sub(r"<ArticleTitle>.*?</ArticleTitle>", f"<ArticleTitle>{xml_escape(sample)}</ArticleTitle>",
                     article)
    return article.replace("<AuthorList", f"<Abstract><AbstractText>{xml_escape(sample)}</AbstractText>"
                                          "</Abstract><AuthorList", 1)


def pubmed_id(index: int) -> str:
    return f"4999{index:04d}"


def via_pubmed(db, folder) -> list[str]:
    """Every sample as a PubMed record fetched by the real PubMed code from the E-utilities emulator."""
    with LocalServer(eutils_responder([pubmed_article(i, s) for i, s in enumerate(SAMPLES)])) as server:
        config = load_config(env={"SPSBOT_EUTILS_URL": server.url + "/entrez/eutils",
                                  "NCBI_EMAIL": "curator@example.org"})
        counts = fetch_pubmed.run(db, config, sleep=lambda seconds: None).counts
    assert (counts["new"], counts["quarantined"], counts["errors"]) == (len(SAMPLES), 0, 0)
    return [f"pmid:{pubmed_id(i)}" for i in range(len(SAMPLES))]


# Each path by which text reaches the store: how to store every sample through it, and the abstract
# it must then hold.
PATHS = {
    "clinicaltrials": (via_clinicaltrials, lambda sample: f"{sample}\n\n- {sample}"),
    "feed": (via_feed, lambda sample: sample),
    "pubmed": (via_pubmed, lambda sample: sample),
}
CASES = [pytest.param(path, i, s, id=f"{path}-sample{i}") for path in PATHS for i, s in enumerate(SAMPLES)]


def score_row(item_id: str, sample: str) -> dict:
    """What the ranker writes for an item: relevant, one theme, its quote the sample."""
    return {"item_id": item_id, "relevance": 0.95, "relevant": 1,
            "themes": json.dumps({"immunomodulation": 0.8}), "labels": json.dumps(["immunomodulation"]),
            "why": "SPS", "evidence": json.dumps({"immunomodulation": {"sentence": sample, "terms": []}})}


def digest_config():
    """The bundled profile, its digest cap above the items every path stores (3 × 7 > 20)."""
    config = load_config()
    config.sections["digest"]["max_items"] = 40
    return config


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(store path, {path: item ids}): every sample stored through every path, scored, with the
    public issue of 23 Nov built."""
    folder = tmp_path_factory.mktemp("medical-text")
    path = folder / "store.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPSBOT_NOW", NOW)
        db = open_db(path)
        ids = {name: via(db, folder) for name, (via, _) in PATHS.items()}
        with db.atomic():
            db["scores"].upsert_all([score_row(item_id, SAMPLES[i]) for item_ids in ids.values()
                                     for i, item_id in enumerate(item_ids)], pk="item_id", alter=True)
        build_digests(db, digest_config(), now=NOW)
        db.close()
    return path, ids


@pytest.fixture
def db(store):
    database = open_db(store[0])
    yield database
    database.close()


@pytest.fixture(scope="module")
def digest(store):
    """(html, text, sent message) of the digest a reader of every theme would get now."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPSBOT_NOW", NOW)
        database = open_db(store[0])
        data, _, page, text, message = preview_digest(database, digest_config(), "reader@example.org")
        database.close()
    assert data["more"] == 0   # every item of every path is in it
    return page, text, email.message_from_bytes(message, policy=policy.default)


@pytest.fixture(scope="module")
def web(store, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPSBOT_NOW", NOW)
        app = create_app(web_config(tmp_path_factory.mktemp("web")), str(store[0]), embedder=FakeEmbedder())
        yield app.test_client()


@pytest.mark.parametrize("path, index, sample", CASES)
def test_record_is_stored_with_the_text_exactly(store, db, path, index, sample):
    row = db["items"].get(store[1][path][index])
    assert row["title"] == sample
    assert row["abstract"] == PATHS[path][1](sample)


def url_of(store, db, path: str, index: int) -> str:
    """Where the digest and the pages link the item this path stored for sample ``index``."""
    return item_links(db["items"].get(store[1][path][index]))[0]["url"]


@pytest.mark.parametrize("path, index, sample", CASES)
def test_digest_html_shows_the_text_exactly(digest, store, db, path, index, sample):
    page, _, message = digest
    assert_html_shows(page, sample)
    assert_link_says(page, url_of(store, db, path, index), sample)   # this path's item says it
    assert parts(message)[1] == page


@pytest.mark.parametrize("index, sample", list(enumerate(SAMPLES)))
def test_digest_html_shows_a_trial_summary_as_the_list_it_is(digest, index, sample):
    escaped = sample.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # the paragraph (the quote, marked where the summary says it) and the list item
    text = re.escape(escaped)
    assert re.search(f"<p[^>]*><span[^>]*>{text}</span></p>\n<ul[^>]*>\n<li>{text}</li>\n</ul>", digest[0])


@pytest.mark.parametrize("path, index, sample", CASES)
def test_digest_text_part_says_the_text_exactly(digest, store, db, path, index, sample):
    _, text, message = digest
    entry = text_entry(text, url_of(store, db, path, index))
    assert entry.startswith(f"* {sample}\n")  # the title of this path's item
    assert sample in entry.split("\n", 2)[2]   # and its quote
    assert parts(message)[0].replace("\r\n", "\n") == text  # and so it travels


@pytest.mark.parametrize("index, sample", list(enumerate(SAMPLES)))
def test_digest_text_part_has_a_trial_summary_as_lines(digest, index, sample):
    assert f"\n  {sample}\n\n  - {sample}\n" in digest[1]  # its paragraph and its list item


@pytest.mark.parametrize("path, index, sample", CASES)
def test_public_issue_page_shows_the_text_exactly(web, store, db, path, index, sample):
    page = web.get("/issues/2026-11-23")
    assert page.status_code == 200
    assert_html_shows(page.get_data(as_text=True), sample)
    assert_link_says(page.get_data(as_text=True), url_of(store, db, path, index), sample)


@pytest.mark.parametrize("index, sample", list(enumerate(SAMPLES)))
def test_public_issue_page_shows_a_trial_summary_as_the_digest_does(web, digest, index, sample):
    """The same summary as the digest: the paragraph (the quote marked in it, not said twice) and
    the list item; the page's style sheet, not inline styles, says how they look."""
    page = web.get("/issues/2026-11-23").get_data(as_text=True)
    [entry] = [e for e in page.split('<li class="item">') if f"/study/{nct_id(index)}" in e]
    text = re.escape(sample.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    assert re.search(f'<div class="summary"><p><mark>{text}</mark></p>\n<ul>\n<li>{text}</li>\n</ul>', entry)
    assert "<blockquote>" not in entry


@pytest.mark.parametrize("path, index, sample", CASES)
def test_search_page_finds_and_shows_the_text_exactly(web, store, db, path, index, sample):
    page = web.get("/search", query_string={"q": query_word(sample)})
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert_html_shows(body, sample)
    assert_link_says(body, url_of(store, db, path, index), sample)


def test_csv_export_holds_the_text_exactly(store, db):
    out = io.StringIO()
    assert write_csv(export_records(db), out) == len(CASES)
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(out.getvalue()))}
    for path, (_, abstract) in PATHS.items():
        for index, sample in enumerate(SAMPLES):
            row = rows[store[1][path][index]]
            assert (row["title"], row["abstract"]) == (sample, abstract(sample))
