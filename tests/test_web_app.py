"""The web front's routes (a contract: acceptance checks use them), through Flask's test client
over the real app and a real SQLite file: sign-up with double opt-in, preferences, unsubscribe
(incl. RFC 8058 one-click), feedback, archive, feed, search, and what every page must never do."""

import json
import re
import xml.etree.ElementTree as ET

import pytest

from bot.digest.builder import build_digests
from bot.digest.subscribers import add_subscriber
from bot.digest.tokens import make_confirm_token, make_feedback_token, make_token
from bot.store import open_db
from bot.store.subscribers import get_signup
from bot.web.app import create_app
from digest_support import NOW, paper, seed, trial
from bot.config import load_config
from conftest import FakeEmbedder, copy_db
from web_support import csrf, web_config, web_store

SECRET = b"web-test-secret-0123456789abcdef-01234"
BASE = "http://sps.example.org"


@pytest.fixture(scope="module")
def site_template(tmp_path_factory):
    """The store every test here starts from, built once: three relevant items, one irrelevant, Ann."""
    return web_store(tmp_path_factory.mktemp("web-template") / "template.db",
                     [paper(1, "Rituximab in refractory stiff person syndrome", abstract="Rituximab helped."),
                      paper(2, "Intravenous immunoglobulin for stiffness", abstract="IVIG trial in SPS."),
                      paper(3, "Rituximab for spasticity after stroke", relevant=0, relevance=0.1),
                      trial("NCT07654321", "Efgartigimod in stiff person syndrome")],
                     ann_themes=load_config().theme_names)


@pytest.fixture
def site(tmp_path, monkeypatch, site_template):
    """(app, client, db) over a fresh copy of the template store."""
    monkeypatch.setenv("SPSBOT_SECRET", SECRET.decode())
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    config = web_config(tmp_path, f'base_url = "{BASE}"\n')
    path = copy_db(site_template, tmp_path / "web.db")
    db = open_db(path)
    app = create_app(config, str(path), embedder=FakeEmbedder())
    yield app, app.test_client(), db
    db.close()


def _form(client, url: str) -> tuple[str, str]:
    page = client.get(url)
    assert page.status_code == 200, page.data[:300]
    text = page.get_data(as_text=True)
    return text, csrf(text)


def _status(db, email="ann@example.org"):
    return db.execute("select status from subscribers where email = ?", [email]).fetchone()[0]


# --- home, archive, feed -------------------------------------------------------------------

def test_home_has_the_topic_the_form_and_the_archive_newest_first(site, monkeypatch):
    app, client, db = site
    config = app.extensions["spsbot"].config
    build_digests(db, config, now=NOW)  # the public issue of 23 Nov
    seed(db, [paper(5, "A later paper on GAD65", date="2026-11-29")], now="2026-11-30T06:00:00+00:00")
    build_digests(db, config, now="2026-11-30T06:00:00+00:00")
    page = client.get("/").get_data(as_text=True)
    assert "Stiff Person Syndrome" in page and 'action="/subscribe"' in page and 'name="csrf_token"' in page
    days = re.findall(r'href="/issues/(\d{4}-\d{2}-\d{2})"', page)
    assert days == ["2026-11-30", "2026-11-23"]
    issue = client.get("/issues/2026-11-23").get_data(as_text=True)
    assert "Rituximab in refractory stiff person syndrome" in issue and "https://pubmed.ncbi.nlm.nih.gov/1/" in issue
    assert "ann@example.org" not in issue and "ann@example.org" not in page
    assert client.get("/issues/2026-01-01").status_code == 404
    bad = client.get("/issues/last-week")
    assert bad.status_code == 400 and "named by its date" in bad.get_data(as_text=True)


def test_feed_lists_issues_with_links_to_the_web_front(site):
    app, client, db = site
    build_digests(db, app.extensions["spsbot"].config, now=NOW)
    answer = client.get("/feed.atom")
    assert answer.status_code == 200 and answer.mimetype == "application/atom+xml"
    feed = ET.fromstring(answer.data)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entries = feed.findall("a:entry", ns)
    assert len(entries) == 1
    assert entries[0].find("a:link", ns).get("href") == f"{BASE}/issues/2026-11-23"
    assert feed.find("a:link[@rel='alternate']", ns).get("href") == f"{BASE}/"


# --- sign-up: double opt-in ----------------------------------------------------------------

def _subscribe(client, email, **extra):
    _, token = _form(client, "/")
    return client.post("/subscribe", data={"csrf_token": token, "email": email, **extra})


def _body(answer) -> str:
    """The page without its CSRF token (which differs per session by design)."""
    return re.sub(r'value="[^"]*"', "", answer.get_data(as_text=True))


def test_signup_stores_a_request_and_a_pending_e_mail_but_no_subscriber(site):
    _, client, db = site
    answer = _subscribe(client, "new@example.org", name="Nia", themes=["diagnosis", "biomarkers"])
    assert answer.status_code == 200 and "Check your inbox" in answer.get_data(as_text=True)
    signup = db.execute("select email, name, themes, kind, mail_status from signups").fetchall()
    assert signup == [("new@example.org", "Nia", '["biomarkers", "diagnosis"]', "confirm", "pending")]
    assert db.execute("select count(*) from subscribers where email = 'new@example.org'").fetchone()[0] == 0


def test_the_page_never_tells_whether_an_address_is_subscribed(site):
    _, client, db = site
    new = _subscribe(client, "new@example.org")
    known = _subscribe(client, "ann@example.org")
    for _ in range(3):  # over the per-address limit: no e-mail, and still the same page
        limited = _subscribe(client, "new@example.org")
    assert new.status_code == known.status_code == limited.status_code == 200
    assert _body(new) == _body(known) == _body(limited)
    rows = dict(db.execute("select email || ':' || id, kind || ':' || mail_status from signups").fetchall())
    assert sorted(rows.values()) == ["confirm:pending", "confirm:pending", "confirm:pending", "confirm:skipped",
                                     "manage:pending"]


def test_signup_refuses_bad_input_with_a_400_page_and_stores_nothing(site):
    _, client, db = site
    no_csrf = client.post("/subscribe", data={"email": "new@example.org"})
    assert no_csrf.status_code == 400 and "expired or was not sent from this site" in no_csrf.get_data(as_text=True)
    for email in ("not-an-address", "a@b", "ann@example.org\r\nBcc: x@example.org", "<script>@x.org"):
        answer = _subscribe(client, email)
        page = answer.get_data(as_text=True)
        assert answer.status_code == 400 and "not an e-mail address we can send to" in page, email
        assert "<script>@" not in page
    unknown_theme = _subscribe(client, "new@example.org", themes=["telepathy"])
    assert unknown_theme.status_code == 400 and "unknown theme" in unknown_theme.get_data(as_text=True)
    assert db.execute("select count(*) from signups").fetchone()[0] == 0


def test_honeypot_field_gets_the_same_page_and_nothing_is_stored(site):
    _, client, db = site
    answer = _subscribe(client, "bot@example.org", website="http://spam.example")
    assert answer.status_code == 200 and "Check your inbox" in answer.get_data(as_text=True)
    assert db.execute("select count(*) from signups").fetchone()[0] == 0


def test_per_client_limit_answers_429(site):
    app, client, db = site
    for number in range(10):
        assert _subscribe(client, f"person{number}@example.org").status_code == 200
    over = _subscribe(client, "person10@example.org")
    assert over.status_code == 429 and "Too many requests" in over.get_data(as_text=True)
    assert int(over.headers["Retry-After"]) > 0
    assert db.execute("select count(*) from signups").fetchone()[0] == 10
    other = app.test_client()  # another client is not limited by this one
    _, token = _form(other, "/")
    assert other.post("/subscribe", data={"csrf_token": token, "email": "x@example.org"},
                      environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200


def test_global_hourly_cap_on_signup_e_mails(tmp_path, monkeypatch):
    from bot.digest.confirmations import queue_signup
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    config = web_config(tmp_path, "signup_mails_per_hour = 2\n")
    db = open_db(tmp_path / "cap.db")
    outcomes = [queue_signup(db, config, f"p{n}@example.org", None, None) for n in range(3)]
    assert outcomes == ["confirm", "confirm", "capped"]
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-23T07:00:01+00:00")  # an hour later the cap has room again
    assert queue_signup(db, config, "p3@example.org", None, None) == "confirm"


def _confirm_link(client, db, address: str) -> tuple[int, str, str, str]:
    """Sign ``address`` up for diagnosis; (sign-up id, its confirmation token, the confirm page, its form token)."""
    _subscribe(client, address, themes=["diagnosis"])
    signup_id = db.execute("select id from signups where email = ?", [address]).fetchone()[0]
    token = make_confirm_token(SECRET, signup_id, address)
    page, form_token = _form(client, f"/confirm?token={token}")
    return signup_id, token, page, form_token


def test_confirm_page_asks_and_the_post_makes_an_active_subscriber(site):
    app, client, db = site
    signup_id, token, page, form_token = _confirm_link(client, db, "new@example.org")
    assert "Confirm my subscription" in page and "n••@example.org" in page and "new@example.org" not in page
    assert db.execute("select count(*) from subscribers where email = 'new@example.org'").fetchone()[0] == 0
    done = client.post("/confirm", data={"csrf_token": form_token, "token": token})
    assert done.status_code == 200 and "You are subscribed" in done.get_data(as_text=True)
    row = db.execute("select status, themes, confirmed_at from subscribers where email = 'new@example.org'").fetchone()
    assert row == ("active", '["diagnosis"]', NOW)
    again = client.post("/confirm", data={"csrf_token": form_token, "token": token})  # a second click: no change
    assert again.status_code == 200
    assert db.execute("select count(*) from subscribers where email = 'new@example.org'").fetchone()[0] == 1
    assert get_signup(db, signup_id)["confirmed_at"] == NOW


def test_a_used_confirmation_link_cannot_undo_an_unsubscribe(site):
    from bot.store.subscribers import unsubscribe
    _, client, db = site
    _, token, _, form_token = _confirm_link(client, db, "leaver@example.org")
    assert client.post("/confirm", data={"csrf_token": form_token, "token": token}).status_code == 200
    subscriber_id = db.execute("select id from subscribers where email = 'leaver@example.org'").fetchone()[0]
    unsubscribe(db, subscriber_id)
    for answer in (client.get(f"/confirm?token={token}"),   # an old e-mail, a mail scanner, a second click
                   client.post("/confirm", data={"csrf_token": form_token, "token": token})):
        page = answer.get_data(as_text=True)
        assert answer.status_code == 400 and "already used" in page and 'name="email"' in page  # sign up again
    assert db.execute("select status from subscribers where id = ?", [subscriber_id]).fetchone()[0] == "unsubscribed"


def test_confirm_refuses_forged_and_expired_links(site, monkeypatch):
    _, client, db = site
    _subscribe(client, "new@example.org")
    signup_id = db.execute("select id from signups").fetchone()[0]
    good = make_confirm_token(SECRET, signup_id, "new@example.org")
    for token in (good[:-2] + "xx", make_confirm_token(b"other", signup_id, "new@example.org"),
                  make_confirm_token(SECRET, signup_id + 1, "new@example.org"), "1.2", "x" * 5000, ""):
        answer = client.get(f"/confirm?token={token}")
        assert answer.status_code == 400, token
        assert "Traceback" not in answer.get_data(as_text=True)
    _, form_token = _form(client, f"/confirm?token={good}")
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-25T06:00:01+00:00")  # 48 h and a second later
    late = client.post("/confirm", data={"csrf_token": form_token, "token": good})
    assert late.status_code == 400 and "expired" in late.get_data(as_text=True)
    assert db.execute("select count(*) from subscribers where email = 'new@example.org'").fetchone()[0] == 0


def test_unconfirmed_addresses_never_receive_a_digest(site):
    app, client, db = site
    config = app.extensions["spsbot"].config
    _subscribe(client, "new@example.org")
    build_digests(db, config, now=NOW)
    recipients = [r[0] for r in db.execute("select s.email from deliveries d join subscribers s "
                                           "on s.id = d.subscriber_id")]
    assert recipients == ["ann@example.org"]
    signup_id = db.execute("select id from signups").fetchone()[0]
    token = make_confirm_token(SECRET, signup_id, "new@example.org")
    _, form_token = _form(client, f"/confirm?token={token}")
    client.post("/confirm", data={"csrf_token": form_token, "token": token})
    build_digests(db, config, now=NOW)
    recipients = [r[0] for r in db.execute("select s.email from deliveries d join subscribers s "
                                           "on s.id = d.subscriber_id order by d.id")]
    assert recipients == ["ann@example.org", "new@example.org"]


# --- preferences ---------------------------------------------------------------------------

def _preferences_token(email="ann@example.org", subscriber_id=1):
    return make_token(SECRET, subscriber_id, email, purpose="preferences")


def test_preferences_show_and_save_themes_frequency_and_cap(site):
    _, client, db = site
    token = _preferences_token()
    page, form_token = _form(client, f"/preferences?token={token}")
    assert page.count('type="checkbox" name="themes"') == 6 and page.count("checked") >= 6  # all themes
    answer = client.post("/preferences", data={"csrf_token": form_token, "token": token, "action": "save",
                                               "themes": ["registries", "diagnosis"], "frequency": "monthly",
                                               "max_items": "7"})
    assert answer.status_code == 303 and "/preferences?token=" in answer.headers["Location"]
    row = db.execute("select themes, frequency, max_items, status, name from subscribers where id = 1").fetchone()
    assert row == ('["registries", "diagnosis"]', "monthly", 7, "active", "Ann")  # no name field sent: kept
    shown = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Your preferences are saved." in shown and 'value="7"' in shown


@pytest.mark.parametrize("fields, message", [
    ({"max_items": "0"}, "between 1 and 200"), ({"max_items": "many"}, "whole number"),
    ({"frequency": "hourly"}, "unknown frequency"), ({"themes": ["telepathy"]}, "unknown theme"),
])
def test_preferences_refuse_bad_values_and_keep_the_old_ones(site, fields, message):
    _, client, db = site
    token = _preferences_token()
    _, form_token = _form(client, f"/preferences?token={token}")
    data = {"csrf_token": form_token, "token": token, "action": "save", "frequency": "weekly", "max_items": "20",
            **fields}
    answer = client.post("/preferences", data=data)
    assert answer.status_code == 400 and message in answer.get_data(as_text=True)
    assert db.execute("select themes, frequency, max_items from subscribers where id = 1").fetchone() == (
        None, "weekly", 20)


def test_preferences_unsubscribe_and_subscribe_again(site):
    _, client, db = site
    token = _preferences_token()
    _, form_token = _form(client, f"/preferences?token={token}")
    client.post("/preferences", data={"csrf_token": form_token, "token": token, "action": "unsubscribe"})
    assert _status(db) == "unsubscribed"
    page = client.get(f"/preferences?token={token}").get_data(as_text=True)
    assert "Subscribe again" in page and "Save preferences" not in page
    client.post("/preferences", data={"csrf_token": form_token, "token": token, "action": "resubscribe"})
    assert _status(db) == "active"


def test_a_token_only_opens_the_page_it_was_made_for(site):
    _, client, db = site
    unsubscribe = make_token(SECRET, 1, "ann@example.org")  # as in the List-Unsubscribe header
    assert client.get(f"/preferences?token={unsubscribe}").status_code == 400
    assert client.get(f"/unsubscribe?token={_preferences_token()}").status_code == 400
    feedback = make_feedback_token(SECRET, 1, "ann@example.org", "pmid:1")
    assert client.get(f"/preferences?token={feedback}").status_code == 400


# --- unsubscribe ---------------------------------------------------------------------------

def test_unsubscribe_get_asks_post_unsubscribes(site):
    _, client, db = site
    token = make_token(SECRET, 1, "ann@example.org")
    page, form_token = _form(client, f"/unsubscribe?token={token}")
    assert "Unsubscribe" in page and _status(db) == "active"  # a GET (a link scanner) changes nothing
    no_csrf = client.post("/unsubscribe", data={"token": token})
    assert no_csrf.status_code == 400 and _status(db) == "active"
    done = client.post("/unsubscribe", data={"csrf_token": form_token, "token": token})
    assert done.status_code == 200 and "You are unsubscribed" in done.get_data(as_text=True)
    assert _status(db) == "unsubscribed"
    assert "is not subscribed" in client.get(f"/unsubscribe?token={token}").get_data(as_text=True)


def test_rfc_8058_one_click_post_needs_no_page_cookie_or_csrf(site):
    app, _, db = site
    build_digests(db, app.extensions["spsbot"].config, now=NOW)  # a pending digest for Ann
    token = make_token(SECRET, 1, "ann@example.org")
    fresh = app.test_client()  # a mail provider: no cookies, never saw a page
    answer = fresh.post(f"/unsubscribe?token={token}", data="List-Unsubscribe=One-Click",
                        content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200
    assert _status(db) == "unsubscribed"
    assert db.execute("select status, last_error from deliveries").fetchone() == ("failed", "unsubscribed")
    forged = fresh.post(f"/unsubscribe?token={token[:-3]}abc", data="List-Unsubscribe=One-Click",
                        content_type="application/x-www-form-urlencoded")
    assert forged.status_code == 400


# --- feedback ------------------------------------------------------------------------------

def test_feedback_page_shows_two_buttons_and_the_post_stores_a_vote_apart_from_labels(site):
    _, client, db = site
    token = make_feedback_token(SECRET, 1, "ann@example.org", "pmid:2")
    page, form_token = _form(client, f"/feedback?token={token}&vote=irrelevant")
    assert "Intravenous immunoglobulin for stiffness" in page
    assert 'value="relevant"' in page and 'value="irrelevant" class="primary"' in page
    assert db.execute("select count(*) from votes").fetchone()[0] == 0  # the GET stored nothing
    answer = client.post("/feedback", data={"csrf_token": form_token, "token": token, "vote": "irrelevant"})
    assert answer.status_code == 303
    assert "Recorded: <b>Not relevant</b>" in client.get(answer.headers["Location"]).get_data(as_text=True)
    assert db.execute("select subscriber_id, item_id, vote from votes").fetchall() == [(1, "pmid:2", "irrelevant")]
    assert db.execute("select count(*) from feedback").fetchone()[0] == 0  # not a curator label
    client.post("/feedback", data={"csrf_token": form_token, "token": token, "vote": "relevant"})  # changed mind
    assert db.execute("select vote from votes").fetchall() == [("relevant",)]


def test_a_curators_click_is_a_curator_label(site):
    app, client, db = site
    add_subscriber(db, "cur@example.org", valid_themes=app.extensions["spsbot"].config.theme_names, curator=True)
    token = make_feedback_token(SECRET, 2, "cur@example.org", "pmid:1")
    _, form_token = _form(client, f"/feedback?token={token}")
    client.post("/feedback", data={"csrf_token": form_token, "token": token, "vote": "irrelevant"})
    assert db.execute("select item_id, label, theme from feedback").fetchall() == [("pmid:1", "irrelevant", None)]
    assert db.execute("select count(*) from votes").fetchone()[0] == 0


def test_feedback_refuses_forged_links_other_items_and_bad_votes(site):
    _, client, db = site
    token = make_feedback_token(SECRET, 1, "ann@example.org", "pmid:2")
    subscriber, day, item, signature = token.split(".")
    import base64
    other_item = base64.urlsafe_b64encode(b"pmid:1").decode().rstrip("=")
    for forged in (f"{subscriber}.{day}.{other_item}.{signature}", f"2.{day}.{item}.{signature}",
                   f"{subscriber}.{day}.!!!.{signature}", make_feedback_token(SECRET, 1, "ann@example.org", "pmid:99")):
        assert client.get(f"/feedback?token={forged}").status_code == 400, forged
    _, form_token = _form(client, f"/feedback?token={token}")
    bad = client.post("/feedback", data={"csrf_token": form_token, "token": token, "vote": "meh"})
    assert bad.status_code == 400
    assert db.execute("select count(*) from votes").fetchone()[0] == 0


# --- search --------------------------------------------------------------------------------

def test_search_finds_relevant_items_only_with_their_links(site):
    _, client, _ = site
    page = client.get("/search?q=rituximab").get_data(as_text=True)
    assert "Rituximab in refractory stiff person syndrome" in page
    assert "spasticity after stroke" not in page  # judged irrelevant by the ranker
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/1/"' in page
    trial_page = client.get("/search?q=efgartigimod").get_data(as_text=True)
    assert 'href="https://clinicaltrials.gov/study/NCT07654321"' in trial_page and "Recruiting" in trial_page


def test_search_pages(site, tmp_path):
    app, client, db = site
    seed(db, [paper(100 + n, f"Stiffness case {n}", abstract="stiffness") for n in range(25)])
    first = client.get("/search?q=stiffness").get_data(as_text=True)
    assert first.count('<li>\n      <p class="title">') == 10 and "page=2" in first and "Previous" not in first
    third = client.get("/search?q=stiffness&page=3").get_data(as_text=True)
    assert "Previous" in third and "page=2" in third and '<ol class="results" start="21">' in third
    pages = [re.findall(r'<p class="title"><a href="https://pubmed.ncbi.nlm.nih.gov/(\d+)/"',
                        client.get(f"/search?q=stiffness&page={p}").get_data(as_text=True)) for p in (1, 2, 3)]
    flat = [pmid for page in pages for pmid in page]
    assert [len(page) for page in pages[:2]] == [10, 10] and len(flat) == len(set(flat))  # no result twice
    assert {str(100 + n) for n in range(25)} <= set(flat)


@pytest.mark.parametrize("query, status, message", [
    ("*", 400, "no words to search for"), ("x" * 301, 400, "too long"),
    ("rituximab&page=0", 400, "page must be a number"), ("rituximab&page=abc", 400, "page must be a number"),
    ('" OR 1=1; DROP TABLE items; --', 200, "Search"), ("", 200, "Search"),
])
def test_search_bad_input_is_a_page_never_a_traceback(site, query, status, message):
    _, client, db = site
    answer = client.get(f"/search?q={query}")
    assert answer.status_code == status and message in answer.get_data(as_text=True)
    assert db["items"].count == 4


def test_search_per_client_limit(site):
    _, client, _ = site
    answers = [client.get("/search?q=rituximab").status_code for _ in range(31)]
    assert answers[:30] == [200] * 30 and answers[30] == 429


# --- what every page must do and never do --------------------------------------------------

def _every_page(app, client, db) -> dict[str, object]:
    config = app.extensions["spsbot"].config
    build_digests(db, config, now=NOW)
    add_subscriber(db, "bob.secret@example.net", valid_themes=config.theme_names)
    return {url: client.get(url) for url in (
        "/", "/issues/2026-11-23", "/feed.atom", "/search?q=rituximab", "/search",
        f"/preferences?token={_preferences_token()}", f"/unsubscribe?token={make_token(SECRET, 1, 'ann@example.org')}",
        f"/feedback?token={make_feedback_token(SECRET, 1, 'ann@example.org', 'pmid:1')}", "/confirm?token=1.2.3",
        "/nope", "/static/style.css")}


def test_every_response_has_strict_security_headers_and_no_other_subscribers_data(site):
    app, client, db = site
    for url, answer in _every_page(app, client, db).items():
        headers = answer.headers
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "unsafe" not in csp, url
        assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
        body = answer.get_data(as_text=True)
        assert "bob.secret" not in body and "ann@example.org" not in body, url  # masked on Ann's pages
        assert SECRET.decode() not in body and "Traceback" not in body
        if "token=" in url or url in ("/", "/search"):
            assert headers["Cache-Control"] == "no-store", url
        if url.endswith(".html") or answer.mimetype == "text/html":
            assert "<script" not in body and "style=" not in body, url  # the strict CSP would block inline


def test_hostile_titles_are_escaped_on_every_page(site):
    app, client, db = site
    seed(db, [paper(66, 'Rituximab <script>alert(1)</script> <img src=x onerror="alert(2)">',
                    abstract="rituximab", journal="J <b>bold</b>")])
    build_digests(db, app.extensions["spsbot"].config, now=NOW)
    pages = [client.get("/search?q=rituximab"), client.get("/issues/2026-11-23"),
             client.get(f"/feedback?token={make_feedback_token(SECRET, 1, 'ann@example.org', 'pmid:66')}")]
    for answer in pages:
        body = answer.get_data(as_text=True)
        assert answer.status_code == 200
        assert "<script>alert" not in body and "<img src=x" not in body and "<b>bold" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_session_cookie_is_httponly_samesite_and_secure_behind_https(tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_SECRET", SECRET.decode())
    app = create_app(web_config(tmp_path, 'base_url = "https://sps.example.org"\n'), str(tmp_path / "s.db"))
    cookie = app.test_client().get("/", base_url="https://sps.example.org").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie
    assert "csrf" not in cookie.lower()  # the cookie is signed, the token inside it opaque


def test_an_unexpected_error_is_a_500_page_without_a_traceback(site, caplog):
    _, client, db = site
    # a store that fails on write (as a full disk would): the feedback POST fails inside SQLite
    db.execute("create trigger broken before insert on votes begin select raise(abort, 'disk I/O error'); end")
    token = make_feedback_token(SECRET, 1, "ann@example.org", "pmid:1")
    _, form_token = _form(client, f"/feedback?token={token}")
    answer = client.post("/feedback", data={"csrf_token": form_token, "token": token, "vote": "relevant"})
    body = answer.get_data(as_text=True)
    assert answer.status_code == 500 and "Something went wrong on our side" in body
    assert "Traceback" not in body and "disk I/O" not in body and "sqlite" not in body.lower()
    assert any("POST /feedback failed" in r.getMessage() for r in caplog.records)


def test_digest_links_point_to_the_web_front(site):
    app, _, db = site
    build_digests(db, app.extensions["spsbot"].config, now=NOW)
    data = json.loads(db.execute("select data from digests where subscriber_id = 1").fetchone()[0])
    assert data["unsubscribe"]["url"].startswith(f"{BASE}/unsubscribe?token=")
    text, html = db.execute("select text, html from digests where subscriber_id = 1").fetchone()
    assert f"{BASE}/preferences?token=" in text and f"{BASE}/preferences?token=" in html
    feedback = re.findall(rf"{re.escape(BASE)}/feedback\?token=[^\s\"&]+&amp;vote=irrelevant", html)
    assert len(feedback) == 3  # two papers and the trial, each with its own signed link
    assert len(set(feedback)) == 3 and text.count(f"{BASE}/feedback?token=") == 3
