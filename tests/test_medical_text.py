"""Medical text full of ``<``, ``>``, ``≤``, ``&``, ``p<0.05``, ``<5 years`` reaches every reader
exactly: fetched from ClinicalTrials.gov (a real v2 record served by a local registry, its summary
markdown-escaped as the API sends it), stored, put in the digest's HTML and text parts (and the
sent message), on the public issue page and the search page, and in the CSV export.

The samples live in ``tests/medical_text.py``; each path that stores text is one entry of
``PATHS`` (a function storing every sample through it, and the abstract it must then hold), and
every check after the store runs over every path. The feed and PubMed paths are one entry each.
"""

import copy
import csv
import email
import io
import json
import re
from email import policy

import pytest

from bot.config import load_config
from bot.digest.builder import build_digests, preview_digest
from bot.digest.entries import item_links
from bot.export import export_records, write_csv
from bot.fetch import clinicaltrials as fetch_ctgov
from bot.replay import LocalServer
from bot.replay.ctgov import ctgov_responder
from bot.store import open_db
from bot.web.app import create_app
from conftest import FakeEmbedder
from ctgov_helpers import make_config, study
from digest_support import NOW, parts
from medical_text import SAMPLES, assert_html_shows, markdown_escaped, query_word
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


# Each path by which text reaches the store: how to store every sample through it, and the abstract
# it must then hold. (The feed and PubMed paths are one entry each; the digest holds max_items = 20.)
PATHS = {
    "clinicaltrials": (via_clinicaltrials, lambda sample: f"{sample}\n\n- {sample}"),
}
CASES = [pytest.param(path, i, s, id=f"{path}-sample{i}") for path in PATHS for i, s in enumerate(SAMPLES)]


def score_row(item_id: str, sample: str) -> dict:
    """What the ranker writes for an item: relevant, one theme, its quote the sample."""
    return {"item_id": item_id, "relevance": 0.95, "relevant": 1,
            "themes": json.dumps({"immunomodulation": 0.8}), "labels": json.dumps(["immunomodulation"]),
            "why": "SPS", "evidence": json.dumps({"immunomodulation": {"sentence": sample, "terms": []}})}


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
        build_digests(db, load_config(), now=NOW)
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
        _, _, html, text, message = preview_digest(database, load_config(), "reader@example.org")
        database.close()
    return html, text, email.message_from_bytes(message, policy=policy.default)


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


@pytest.mark.parametrize("path, index, sample", CASES)
def test_digest_html_shows_the_text_exactly(digest, path, index, sample):
    html, _, message = digest
    assert_html_shows(html, sample)
    assert parts(message)[1] == html


@pytest.mark.parametrize("index, sample", list(enumerate(SAMPLES)))
def test_digest_html_shows_a_trial_summary_as_the_list_it_is(digest, index, sample):
    escaped = sample.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # the paragraph (the quote, marked where the summary says it) and the list item
    text = re.escape(escaped)
    assert re.search(f"<p[^>]*><span[^>]*>{text}</span></p>\n<ul[^>]*>\n<li>{text}</li>\n</ul>", digest[0])


@pytest.mark.parametrize("path, index, sample", CASES)
def test_digest_text_part_says_the_text_exactly(digest, path, index, sample):
    _, text, message = digest
    assert f"\n* {sample}\n" in text  # the title
    assert parts(message)[0].replace("\r\n", "\n") == text  # and so it travels


@pytest.mark.parametrize("index, sample", list(enumerate(SAMPLES)))
def test_digest_text_part_has_a_trial_summary_as_lines(digest, index, sample):
    assert f"\n  {sample}\n\n  - {sample}\n" in digest[1]  # its paragraph and its list item


@pytest.mark.parametrize("path, index, sample", CASES)
def test_public_issue_page_shows_the_text_exactly(web, path, index, sample):
    page = web.get("/issues/2026-11-23")
    assert page.status_code == 200
    assert_html_shows(page.get_data(as_text=True), sample)


@pytest.mark.parametrize("path, index, sample", CASES)
def test_search_page_finds_and_shows_the_text_exactly(web, store, db, path, index, sample):
    page = web.get("/search", query_string={"q": query_word(sample)})
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert_html_shows(body, sample)
    link = item_links(db["items"].get(store[1][path][index]))[0]["url"]
    assert f'href="{link}"' in body


def test_csv_export_holds_the_text_exactly(store, db):
    out = io.StringIO()
    assert write_csv(export_records(db), out) == len(CASES)
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(out.getvalue()))}
    for path, (_, abstract) in PATHS.items():
        for index, sample in enumerate(SAMPLES):
            row = rows[store[1][path][index]]
            assert (row["title"], row["abstract"]) == (sample, abstract(sample))
