"""Search that answers a question (issue 24): a plain question finds items about its content words
(the small words left out), each result shows where its words matched with them marked (escaped),
quoted words still all have to match, and "nothing found" offers the nearest items in meaning.
And the menu's Feed link explains what a feed is, with the address to copy."""

import re

import pytest

from bot.search.hybrid import parse_query, search
from bot.store import open_db
from bot.web.app import create_app
from bot.web.public import marked
from conftest import FakeEmbedder
from digest_support import NOW, paper, seed
from web_support import web_config

EXERCISE = "A supervised home exercise programme eased stiffness in eight of ten patients."


def _store(path):
    db = open_db(path)
    seed(db, [paper(1, "Diazepam in stiff person syndrome", abstract="Stiffness and spasms improved with diazepam. "
                    "Stiffness returned when the dose was lowered; my clinic can help."),
              paper(2, "Exercise therapy in stiff person syndrome: a pilot study",
                    abstract=f"We studied physiotherapy. {EXERCISE}", themes={"multidisciplinary": 0.9}),
              paper(3, "Rituximab <b>in</b> refractory stiffness", abstract="Rituximab given; stiffness persisted."),
              paper(4, "Exercise and cycling in spasticity", relevant=0, relevance=0.1,
                    abstract="Exercise helped spasticity after stroke.")])
    return db


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_SECRET", "search-secret-0123456789abcdef-0123456")
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    _store(tmp_path / "s.db").close()

    def make(extra=""):
        config = web_config(tmp_path, 'base_url = "http://sps.example.org"\n' + extra)
        return create_app(config, str(tmp_path / "s.db"), embedder=FakeEmbedder()).test_client()
    return make


def _titles(page: str) -> list[str]:
    return re.findall(r'<p class="title"><a [^>]+>([^<]+)</a>', page)


def test_a_question_finds_the_paper_about_its_words_first_with_the_sentence_marked(client):
    page = client("semantic_search = false\n").get("/search?q=can exercise help my stiffness").get_data(as_text=True)
    titles = _titles(page)
    assert titles[0] == "Exercise therapy in stiff person syndrome: a pilot study"
    assert "Exercise and cycling in spasticity" not in titles  # not relevant: never shown
    first = page[page.index('<p class="snippet">'):]
    first = first[:first.index("</p>")]
    assert "<mark>exercise</mark>" in first and "<mark>stiffness</mark>" in first and "home" in first
    # a title's own markup is text, never HTML, in the result and its snippet
    assert "Rituximab &lt;b&gt;in&lt;/b&gt; refractory stiffness" in page and "<b>in</b>" not in page
    assert "are left out" in page and "use quotes" in page  # the design, stated on the page


def test_quoted_words_must_all_match_again(client):
    app = client("semantic_search = false\n")
    assert _titles(app.get('/search?q="exercise" "rituximab"').get_data(as_text=True)) == []
    assert len(_titles(app.get("/search?q=exercise rituximab").get_data(as_text=True))) == 2


def test_nothing_found_offers_the_nearest_in_meaning(client):
    page = client().get("/search?q=zzzz-unheard-of").get_data(as_text=True)
    assert "Nothing found" in page and "Closest in meaning" in page and len(_titles(page)) == 3
    page = client("semantic_search = false\n").get("/search?q=zzzz").get_data(as_text=True)
    assert "Nothing found" in page and "Closest in meaning" not in page


def test_only_bare_words_drop_the_small_words(tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    db = _store(tmp_path / "s.db")
    assert [t.text for g in parse_query("can exercise help my stiffness").any_content_word().groups for t in g] == \
        ["exercise", "stiffness"]
    assert not parse_query('"can" help').is_plain() and not parse_query("a -b").is_plain()
    assert search(db, "can exercise help my stiffness", semantic=False).hits == []  # the CLI: every word
    assert search(db, "can exercise help my stiffness", semantic=False, any_word=True).hits[0]["id"] == "pmid:2"
    assert search(db, "can my", semantic=False, any_word=True).hits[0]["id"] == "pmid:1"  # only small words


def test_marking_escapes_the_text_and_drops_stray_markers():
    assert str(marked("<i>a</i> \ue000IVIG\ue001 & \u202eb\ue001")) == "&lt;i&gt;a&lt;/i&gt; <mark>IVIG</mark> &amp; b"
    assert str(marked("\ue000open")) == "<mark>open</mark>"


def test_the_feed_link_leads_to_a_page_that_explains_it(client):
    app = client()
    home = app.get("/").get_data(as_text=True)
    assert '<a href="/feed">Feed</a>' in home and 'href="/feed.atom"' in home  # the menu; the <link> for readers
    page = app.get("/feed").get_data(as_text=True)
    assert "A feed is a web address" in page
    assert 'value="http://sps.example.org/feed.atom" readonly' in page or \
        'readonly value="http://sps.example.org/feed.atom"' in page
    assert app.get("/feed.atom").headers["Content-Type"].startswith("application/atom+xml")
