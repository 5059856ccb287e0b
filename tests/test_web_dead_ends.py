"""Every dead end has a way out (issue 24): a damaged or expired link says in one sentence what
happened and offers the form that e-mails a fresh link, which answers the same whatever the
address's state (subscribed, unsubscribed, unknown)."""

import re

import pytest

from bot.config import load_config
from bot.digest.subscribers import add_subscriber
from bot.digest.tokens import make_confirm_token, make_token
from bot.store import open_db
from bot.store.subscribers import find_subscriber, unsubscribe
from bot.web.app import create_app
from digest_support import NOW
from conftest import FakeEmbedder
from web_support import csrf, web_config

SECRET = b"dead-end-secret-0123456789abcdef-0123456"


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_SECRET", SECRET.decode())
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    path = tmp_path / "web.db"
    db = open_db(path)
    add_subscriber(db, "ann@example.org", valid_themes=load_config().theme_names)
    add_subscriber(db, "gone@example.org", valid_themes=load_config().theme_names)
    unsubscribe(db, find_subscriber(db, "gone@example.org")["id"])
    app = create_app(web_config(tmp_path, 'base_url = "http://sps.example.org"\n'), str(path), embedder=FakeEmbedder())
    yield app.test_client(), db
    db.close()


def _main(page: str) -> str:
    """The page's main content without its CSRF token (which differs per session)."""
    main = page[page.index("<main"):page.index("</main>")]
    return re.sub(r'name="csrf_token" value="[^"]+"', "", main)


def test_damaged_and_expired_links_say_what_happened_and_offer_a_fresh_link(site):
    client, db = site
    ann = find_subscriber(db, "ann@example.org")
    good = make_token(SECRET, ann["id"], ann["email"])
    old = make_token(SECRET, ann["id"], ann["email"], now="2025-01-01T00:00:00+00:00", purpose="preferences")
    cases = [("/unsubscribe?token=" + good[:len(good) // 2], "missing or changed"),   # cut by a mail program
             ("/unsubscribe?token=", "missing or changed"), ("/feedback?token=1.2.3.4", "missing or changed"),
             ("/preferences?token=" + old, "has expired"),
             ("/confirm?token=" + make_confirm_token(SECRET, 99, "x@example.org"), "missing or changed")]
    for url, sentence in cases:
        answer = client.get(url)
        page = answer.get_data(as_text=True)
        assert answer.status_code == 400, url
        assert "<h1>This link does not work</h1>" in page and sentence in page, url
        assert 'action="/subscribe"' in page and "E-mail me a fresh link" in page, url
        assert "bad signature" not in page and "Traceback" not in page
    # the one-click POST of a cut link gets the same way out
    cut = client.post("/unsubscribe?token=" + good[:20], data={"List-Unsubscribe": "One-Click"})
    assert cut.status_code == 400 and "E-mail me a fresh link" in cut.get_data(as_text=True)


def test_the_fresh_link_form_answers_the_same_whatever_the_address(site):
    client, db = site
    answers = []
    for address in ("ann@example.org", "gone@example.org", "nobody@example.org"):
        page = client.get("/unsubscribe?token=1.2.broken").get_data(as_text=True)
        answer = client.post("/subscribe", data={"csrf_token": csrf(page), "email": address})
        assert answer.status_code == 200
        answers.append(_main(answer.get_data(as_text=True)))
    assert answers[0] == answers[1] == answers[2] and "Check your inbox" in answers[0]
    # behind the same answer: the subscriber gets their preferences link, the others a confirmation
    kinds = dict(db.execute("select email, kind from signups").fetchall())
    assert kinds == {"ann@example.org": "manage", "gone@example.org": "confirm", "nobody@example.org": "confirm"}

