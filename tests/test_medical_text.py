"""Medical text full of ``<``, ``>``, ``≤``, ``&``, ``p<0.05``, ``<5 years`` reaches every reader
exactly: fetched from ClinicalTrials.gov (a real v2 record served by a local registry, its summary
markdown-escaped as the API sends it), stored, put in the digest's HTML and text parts (and the
sent message), on the public issue page and the search page, and in the CSV export.

The samples live in ``tests/medical_text.py``; the feed and PubMed paths are one test each over
the same list.
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

SAMPLE_PARAMS = [pytest.param(i, s, id=f"sample{i}") for i, s in enumerate(SAMPLES)]


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


def score_row(index: int, sample: str) -> dict:
    """What the ranker writes for the trial: relevant, one theme, its quote a line of the summary."""
    return {"item_id": f"nct:{nct_id(index)}", "relevance": 0.95, "relevant": 1,
            "themes": json.dumps({"immunomodulation": 0.8}), "labels": json.dumps(["immunomodulation"]),
            "why": "SPS trial", "evidence": json.dumps({"immunomodulation": {"sentence": sample, "terms": []}})}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store holding one trial per sample, fetched through the real ClinicalTrials.gov code from a
    local registry, scored, with the public issue of 23 Nov built."""
    folder = tmp_path_factory.mktemp("medical-text")
    path = folder / "store.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPSBOT_NOW", NOW)
        db = open_db(path)
        studies = [registry_study(i, s) for i, s in enumerate(SAMPLES)]
        with LocalServer(ctgov_responder(studies)) as server:
            counts = fetch_ctgov.run(db, make_config(folder, server.url, condition="Stiff-Person Syndrome")).counts
        assert counts["new"] == len(SAMPLES) and counts["quarantined"] == 0
        with db.atomic():
            db["scores"].upsert_all([score_row(i, s) for i, s in enumerate(SAMPLES)], pk="item_id", alter=True)
        build_digests(db, load_config(), now=NOW)
        db.close()
    return path


@pytest.fixture
def db(store):
    database = open_db(store)
    yield database
    database.close()


@pytest.fixture(scope="module")
def digest(store):
    """(html, text, sent message) of the digest a reader of every theme would get now."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPSBOT_NOW", NOW)
        database = open_db(store)
        _, _, html, text, message = preview_digest(database, load_config(), "reader@example.org")
        database.close()
    return html, text, email.message_from_bytes(message, policy=policy.default)


@pytest.fixture(scope="module")
def web(store, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPSBOT_NOW", NOW)
        app = create_app(web_config(tmp_path_factory.mktemp("web")), str(store), embedder=FakeEmbedder())
        yield app.test_client()


@pytest.mark.parametrize("index, sample", SAMPLE_PARAMS)
def test_clinicaltrials_record_is_stored_with_the_text_exactly(db, index, sample):
    row = db["items"].get(f"nct:{nct_id(index)}")
    assert row["title"] == sample
    assert row["abstract"] == f"{sample}\n\n- {sample}"  # escapes resolved, paragraph and list item kept


@pytest.mark.parametrize("index, sample", SAMPLE_PARAMS)
def test_digest_html_shows_the_text_exactly_and_the_summary_as_a_list(digest, index, sample):
    html, _, message = digest
    assert_html_shows(html, sample)
    escaped = sample.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # the markdown rendered as what it says: a paragraph and a list
    assert re.search(f"<p[^>]*>{re.escape(escaped)}</p>\n<ul[^>]*>\n<li>{re.escape(escaped)}</li>\n</ul>", html)
    assert parts(message)[1] == html


@pytest.mark.parametrize("index, sample", SAMPLE_PARAMS)
def test_digest_text_part_says_the_text_exactly(digest, index, sample):
    _, text, message = digest
    assert f"\n* {sample}\n" in text  # the title
    assert f"\n  {sample}\n\n  - {sample}\n" in text  # the summary: its paragraph and its list item
    assert parts(message)[0].replace("\r\n", "\n") == text  # and so it travels


@pytest.mark.parametrize("index, sample", SAMPLE_PARAMS)
def test_public_issue_page_shows_the_text_exactly(web, index, sample):
    page = web.get("/issues/2026-11-23")
    assert page.status_code == 200
    assert_html_shows(page.get_data(as_text=True), sample)


@pytest.mark.parametrize("index, sample", SAMPLE_PARAMS)
def test_search_page_finds_and_shows_the_text_exactly(web, index, sample):
    page = web.get("/search", query_string={"q": query_word(sample)})
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert_html_shows(body, sample)
    assert f"https://clinicaltrials.gov/study/{nct_id(index)}" in body


def test_csv_export_holds_the_text_exactly(db):
    out = io.StringIO()
    assert write_csv(export_records(db), out) == len(SAMPLES)
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(out.getvalue()))}
    for index, sample in enumerate(SAMPLES):
        row = rows[f"nct:{nct_id(index)}"]
        assert (row["title"], row["abstract"]) == (sample, f"{sample}\n\n- {sample}")
