"""The web front under attack (issue 25), against the REAL server (waitress on 127.0.0.1) and a
real SQLite file: searches whose cost does not grow with the store and that never hold the
threads other pages need, tokens that never open a page of another kind, nothing a visitor typed
mailed before the address confirmed, rate limits per mailbox and per network, no 500 for a burst
of sign-ups or odd digits, security headers on the server's own errors, no Host reflection."""

from __future__ import annotations

import ast
import logging
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from bot.digest.builder import build_digests
from bot.digest.subscribers import add_subscriber
from bot.digest.tokens import make_confirm_token, make_feedback_token, make_token
from bot.store import open_db
from bot.web.app import create_app
from conftest import FakeEmbedder, copy_db
from digest_support import NOW, paper, seed, trial
from web_support import csrf, hidden, running, web_config, web_store

SECRET = b"attack-test-secret-of-a-decent-length-0123"


class GatedEmbedder(FakeEmbedder):
    """A search model that stops inside the search of the word "gate" until the test opens the
    gate: a search that holds its slot for as long as the test wants."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def encode(self, texts):
        texts = list(texts)
        if texts == ["gate"]:
            self.entered.set()
            self.gate.wait(20)
        return super().encode(texts)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return web_store(tmp_path_factory.mktemp("attack") / "template.db",
                     [paper(1, "Rituximab in refractory stiff person syndrome", abstract="Rituximab helped."),
                      paper(2, "Gate control of stiffness", abstract="gate stiffness"),
                      trial("NCT07654321", "Efgartigimod in stiff person syndrome")],
                     ann_themes=[])


@contextmanager
def site(tmp_path, monkeypatch, template, extra: str = "", embedder=None):
    """(base URL, db, app) of a running web front over a copy of the template store."""
    monkeypatch.setenv("SPSBOT_SECRET", SECRET.decode())
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    config = web_config(tmp_path, 'base_url = "http://sps.example.org"\n' + extra)
    path = copy_db(template, tmp_path / "web.db")
    db = open_db(path)
    app = create_app(config, str(path), embedder=embedder or FakeEmbedder())
    try:
        with running(app, config.web) as url:
            yield url, db, app
    finally:
        db.close()


def _signup(url: str, email: str, source: str | None = None, **fields) -> requests.Response:
    session = requests.Session()
    if source:  # another client: connect from another loopback address
        session.get_adapter("http://").init_poolmanager(1, 1, source_address=(source, 0))
    token = csrf(session.get(url + "/", timeout=10).text)
    return session.post(url + "/subscribe", data={"csrf_token": token, "email": email, **fields}, timeout=30)


# --- search: a bounded cost, and never the other pages' threads ---------------------------------

def test_broad_prefix_searches_get_a_narrow_it_page(tmp_path, monkeypatch, template):
    with site(tmp_path, monkeypatch, template) as (url, _, _):
        for query in (" ".join(["a*"] * 64), "ri*", "ritu* stif* synd* refr* immu*"):
            answer = requests.get(url + "/search", params={"q": query}, timeout=10)
            assert answer.status_code == 400, query
            assert "too broad" in answer.text, query
        assert requests.get(url + "/search", params={"q": "ritu* stif*"}, timeout=10).status_code == 200


def test_the_time_budget_is_enforced_inside_sqlite(tmp_path, monkeypatch):
    from bot.search.hybrid import TooBroad, search
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    db = open_db(tmp_path / "big.db")
    seed(db, [paper(n, f"Stiffness report {n}", abstract="stiffness " * 20) for n in range(1, 1500)])
    assert len(search(db, "stiffness", semantic=False, limit=5).hits) == 5
    with pytest.raises(TooBroad, match="too broad to answer within 0 s; narrow it"):
        search(db, "stiffness", semantic=False, limit=5, budget=0.0)  # the first clock look stops it
    assert len(search(db, "stiffness", semantic=False, limit=5, budget=30).hits) == 5  # handler removed
    db.close()


def test_a_search_over_budget_is_the_narrow_it_page_on_the_web(tmp_path, monkeypatch, template):
    with site(tmp_path, monkeypatch, template, "search_seconds = 0\nsemantic_search = false\n") as (url, db, _):
        seed(db, [paper(100 + n, f"Stiffness case {n}", abstract="stiffness " * 20) for n in range(1500)])
        answer = requests.get(url + "/search", params={"q": "stiffness"}, timeout=10)
        assert answer.status_code == 400 and "too broad to answer" in answer.text


def test_a_running_search_never_holds_the_pages_others_need(tmp_path, monkeypatch, template):
    embedder = GatedEmbedder()
    with site(tmp_path, monkeypatch, template, embedder=embedder) as (url, _, _):
        slow = {}
        first = threading.Thread(target=lambda: slow.update(answer=requests.get(
            url + "/search", params={"q": "gate"}, timeout=30)))
        first.start()
        try:
            assert embedder.entered.wait(10)  # the first search holds the search slot now
            # answered at once: before, each waited up to 10 s for the slot, holding a worker thread
            # (and three of them with the slow one held all four: /healthz waited 9 s)
            others = [requests.get(url + "/search", params={"q": "rituximab"}, timeout=8) for _ in range(4)]
            health = requests.get(url + "/healthz", timeout=8)
            home = requests.get(url + "/", timeout=8)
            one_click = requests.post(url + "/unsubscribe", params={"token": make_token(SECRET, 1, "ann@example.org")},
                                      data="List-Unsubscribe=One-Click", timeout=8,
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert not embedder.gate.is_set() and first.is_alive()  # all of it while the search ran
        finally:
            embedder.gate.set()
            first.join(20)
    assert [o.status_code for o in others] == [503] * 4
    assert all(int(o.headers["Retry-After"]) > 0 and "try again" in o.text for o in others)
    assert health.text == "ok\n" and home.status_code == 200 and one_click.status_code == 200
    assert slow["answer"].status_code == 200 and "Gate control of stiffness" in slow["answer"].text


def test_a_search_answered_while_another_took_the_slot_is_not_a_503(tmp_path, monkeypatch, template):
    """A question nothing matches by its words runs a second search for its nearest items; when
    another visitor's search took the one slot in between, the answered search became a 503."""
    class OneTurn:  # the slot as it looks when another search starts between the two
        def __init__(self):
            self.turns = 1

        def acquire(self, blocking=True):
            self.turns -= 1
            return self.turns >= 0

        def release(self):
            pass

    with site(tmp_path, monkeypatch, template) as (url, _, app):
        app.extensions["spsbot"].search_slots = OneTurn()
        answer = requests.get(url + "/search", params={"q": "zzyzx quokka"}, timeout=10)
    assert answer.status_code == 200 and "search" in answer.text.lower()


def test_other_writes_never_make_the_next_search_reload_the_stores_vectors(tmp_path, monkeypatch, template):
    """A sign-up or a vote (another worker thread's connection) left every next search reloading
    the whole store's vector matrix, and each worker thread kept its own: now one matrix, kept
    until items or vectors change."""
    from bot.search.hybrid import search, vector_index
    from bot.store import save_items
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    path = copy_db(template, tmp_path / "shared.db")
    one, other = open_db(path), open_db(path)
    embedder = FakeEmbedder()
    search(one, "rituximab", embedder=embedder)
    index = vector_index(one, embedder.passage_space)
    other.execute("insert into signups (email, kind, created_at, mail_status, mail_attempts) "
                  "values ('x@example.org', 'confirm', ?, 'pending', 0)", [NOW])
    other.execute("insert into votes (subscriber_id, item_id, vote, created_at, updated_at) "
                  "values (1, 'pmid:1', 'relevant', ?, ?)", [NOW, NOW])
    other.conn.commit()
    search(one, "stiffness", embedder=embedder)
    assert vector_index(one, embedder.passage_space) is index
    assert vector_index(other, embedder.passage_space) is index  # another thread's connection: the same
    save_items(other, [{"kind": "paper", "pmid": "424242", "title": "Zanubrutinib in a stiff person",
                        "abstract": "A new case."}])
    assert search(one, "zanubrutinib", embedder=embedder).hits[0]["id"] == "pmid:424242"
    assert vector_index(one, embedder.passage_space) is not index  # a new item: a new matrix
    one.close()
    other.close()


def test_search_results_are_cleaned_of_bidi_and_zero_width_characters(tmp_path, monkeypatch, template):
    with site(tmp_path, monkeypatch, template) as (url, db, _):
        seed(db, [paper(77, "Baclofen\u202e kcatta\u200b pump\u2066 study", abstract="baclofen",
                        journal="J\u200f Neuro")])
        # a label that is no theme of the profile (a renamed theme's old scores) is shown as stored
        db.execute("update scores set labels = ? where item_id = 'pmid:77'", ['["old\u202e theme"]'])
        db.conn.commit()
        page = requests.get(url + "/search", params={"q": "baclofen"}, timeout=10).text
    assert "Baclofen kcatta pump study" in page and "old theme" in page
    assert not any(c in page for c in "\u202e\u200b\u2066\u200f")


# --- tokens: one kind never leads to another -----------------------------------------------------

def test_no_page_reached_with_one_kind_of_token_links_another(tmp_path, monkeypatch, template):
    with site(tmp_path, monkeypatch, template) as (url, db, _):
        unsubscribe = make_token(SECRET, 1, "ann@example.org")
        pages = {
            "one-click": requests.post(url + "/unsubscribe", params={"token": unsubscribe},
                                       data="List-Unsubscribe=One-Click", timeout=10,
                                       headers={"Content-Type": "application/x-www-form-urlencoded"}),
            "unsubscribe page": requests.get(url + "/unsubscribe", params={"token": unsubscribe}, timeout=10),
            "feedback": requests.get(url + "/feedback", timeout=10,
                                     params={"token": make_feedback_token(SECRET, 1, "ann@example.org", "pmid:1")}),
        }
        _signup(url, "new@example.org")
        signup_id = db.execute("select id from signups").fetchone()[0]
        session = requests.Session()
        confirm = make_confirm_token(SECRET, signup_id, "new@example.org")
        form = session.get(url + "/confirm", params={"token": confirm}, timeout=10).text
        pages["confirmed"] = session.post(url + "/confirm", data={"csrf_token": csrf(form), "token": confirm},
                                          timeout=10)
    for name, answer in pages.items():
        assert answer.status_code == 200, name
        linked = re.findall(r'href="([^"]*)"', answer.text)
        assert not [link for link in linked if "token=" in link], name
        assert "/preferences" not in answer.text, name


# --- nothing typed is mailed before confirmation; names change only on the preferences page -------

def test_a_returning_subscriber_keeps_their_name_until_they_change_it_on_their_page(tmp_path, monkeypatch,
                                                                                   template):
    with site(tmp_path, monkeypatch, template) as (url, db, _):
        db.execute("update subscribers set status = 'unsubscribed' where id = 1")
        db.conn.commit()
        assert _signup(url, "ann@example.org", name="URGENT: verify at https://evil.example").status_code == 200
        signup_id = db.execute("select id from signups").fetchone()[0]
        session = requests.Session()
        confirm = make_confirm_token(SECRET, signup_id, "ann@example.org")
        form = session.get(url + "/confirm", params={"token": confirm}, timeout=10).text
        session.post(url + "/confirm", data={"csrf_token": csrf(form), "token": confirm}, timeout=10)
        assert db.execute("select status, name from subscribers where id = 1").fetchone() == ("active", "Ann")
        token = make_token(SECRET, 1, "ann@example.org", purpose="preferences")
        page = session.get(url + "/preferences", params={"token": token}, timeout=10).text
        assert 'name="name"' in page and 'value="Ann"' in page
        saved = session.post(url + "/preferences", data={"csrf_token": csrf(page), "token": token, "action": "save",
                                                         "name": "Ann B.", "frequency": "weekly", "max_items": "20"},
                             timeout=10)
        assert saved.status_code == 200  # after the 303
        assert db.execute("select name from subscribers where id = 1").fetchone()[0] == "Ann B."


def test_a_new_subscribers_name_is_the_one_their_own_confirm_page_sent(tmp_path, monkeypatch, template):
    """A visitor can type anything into the sign-up form's name for anyone's address; the person
    who confirms sees it on their confirm page, and only what that page sends becomes the name
    their digests greet them with (it used to be the visitor's text, never shown to them)."""
    phishing = "URGENT: verify at https://evil.example"
    with site(tmp_path, monkeypatch, template) as (url, db, _):
        names = {}
        for address, sent in (("new@example.org", ""), ("zoe@example.org", "Zoe"), ("old@example.org", None)):
            _signup(url, address, name=phishing)
            signup_id = db.execute("select id from signups where email = ?", [address]).fetchone()[0]
            session = requests.Session()
            confirm = make_confirm_token(SECRET, signup_id, address)
            page = session.get(url + "/confirm", params={"token": confirm}, timeout=10).text
            assert hidden(page, "name") == phishing  # shown to the confirming person, editable
            data = {"csrf_token": csrf(page), "token": confirm}
            if sent is not None:  # None: a confirm page loaded before it had the field
                data["name"] = sent
            assert session.post(url + "/confirm", data=data, timeout=10).status_code == 200
            names[address] = db.execute("select name from subscribers where email = ?", [address]).fetchone()[0]
        # an existing subscriber's page has no name field: their name changes on their preferences page only
        db.execute("update subscribers set status = 'unsubscribed' where id = 1")
        db.conn.commit()
        _signup(url, "ann@example.org", name=phishing)
        signup_id = db.execute("select max(id) from signups").fetchone()[0]
        confirm = make_confirm_token(SECRET, signup_id, "ann@example.org")
        page = requests.get(url + "/confirm", params={"token": confirm}, timeout=10).text
        assert 'name="name"' not in page and "evil" not in page
    assert names == {"new@example.org": None, "zoe@example.org": "Zoe", "old@example.org": None}


# --- rate limits: per mailbox, per network, and an honest cap ------------------------------------

@pytest.mark.parametrize("address, key", [
    ("Joe@Example.org", "joe@example.org"), ("joe+news@example.org", "joe@example.org"),
    ("j.o.e+1@gmail.com", "joe@gmail.com"), ("J.OE@googlemail.com", "joe@gmail.com"),
    ("j.oe@example.org", "j.oe@example.org"),  # dots matter outside Gmail
    ("+x@example.org", "+x@example.org"),      # all tag: the address as given
])
def test_mailbox_key(address, key):
    from bot.store.subscribers import mailbox_key
    assert mailbox_key(address) == key


def test_tag_and_dot_variants_of_one_mailbox_share_its_limit(tmp_path, monkeypatch):
    from bot.digest.confirmations import queue_signup
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    config = web_config(tmp_path)
    db = open_db(tmp_path / "variants.db")
    variants = ["joe@gmail.com", "j.oe@gmail.com", "joe+a@gmail.com", "JOE@googlemail.com", "j.o.e+b@gmail.com",
                "Joe+c@GMAIL.com"]
    outcomes = [queue_signup(db, config, email, None, None) for email in variants * 3]
    assert outcomes.count("confirm") == 3 and outcomes.count("limited") == 15
    db.close()


@pytest.mark.parametrize("address, key", [
    ("192.0.2.7", "192.0.2.7"), ("::ffff:192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"), ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"), ("not an address", "not an address"), (None, "unknown"),
])
def test_client_key(address, key):
    from bot.web.limits import client_key
    assert client_key(address) == key


def test_addresses_of_one_ipv6_64_and_mapped_ipv4_share_a_limit(tmp_path, monkeypatch, template):
    monkeypatch.setenv("SPSBOT_SECRET", SECRET.decode())
    app = create_app(web_config(tmp_path, "signups_per_client_hour = 3\n"), str(copy_db(template, tmp_path / "a.db")),
                     embedder=FakeEmbedder())
    for clients in (["2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1:ffff::9", "2001:db8:0:1::abcd"],
                    ["192.0.2.9", "::ffff:192.0.2.9", "192.0.2.9", "::ffff:c000:209"]):
        answers = []
        for n, remote in enumerate(clients):
            client = app.test_client()
            page = client.get("/", environ_base={"REMOTE_ADDR": remote}).get_data(as_text=True)
            answers.append(client.post("/subscribe", data={"csrf_token": csrf(page), "email": f"p{n}@example.org"},
                                       environ_base={"REMOTE_ADDR": remote}).status_code)
        assert answers == [200, 200, 200, 429], clients


def test_when_the_hourly_cap_is_spent_the_page_says_so(tmp_path, monkeypatch, template):
    with site(tmp_path, monkeypatch, template, "signup_mails_per_hour = 1\n") as (url, db, _):
        first = _signup(url, "one@example.org")
        capped = _signup(url, "two@example.org")
    assert first.status_code == 200 and "Check your inbox" in first.text
    assert capped.status_code == 503 and "Check your inbox" not in capped.text
    assert "as many sign-up e-mails as we can this hour" in capped.text and int(capped.headers["Retry-After"]) > 0


def test_writes_while_another_process_holds_the_write_lock_are_a_503_with_retry_after(tmp_path, monkeypatch,
                                                                                     template, caplog):
    """The weekly run (a long ranking or fetch transaction, a migration) can hold SQLite's write
    lock longer than a web request waits for it: a sign-up, a confirmation, a vote or a mail
    provider's one-click unsubscribe then answered 500 "Something went wrong" with a traceback,
    after holding a worker thread for the whole busy timeout. Now: a short wait, then 503 with
    Retry-After (which a one-click sender retries), and one log line."""
    import sqlite3

    from bot.web import context
    monkeypatch.setattr(context, "WRITE_WAIT_MS", 200)
    caplog.set_level(logging.INFO)
    with site(tmp_path, monkeypatch, template) as (url, db, _):
        session = requests.Session()
        form = csrf(session.get(url + "/", timeout=10).text)
        one_click = {"params": {"token": make_token(SECRET, 1, "ann@example.org")},
                     "data": {"List-Unsubscribe": "One-Click"}, "timeout": 30}
        vote = {"csrf_token": form, "vote": "relevant", "token": make_feedback_token(SECRET, 1, "ann@example.org",
                                                                                     "pmid:1")}
        holder = sqlite3.connect(db.conn.execute("pragma database_list").fetchone()[2], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            answers = {
                "sign-up": session.post(url + "/subscribe", data={"csrf_token": form, "email": "x@example.org"},
                                        timeout=30),
                "one-click": requests.post(url + "/unsubscribe", **one_click),
                "vote": session.post(url + "/feedback", data=vote, timeout=30),
            }
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        again = requests.post(url + "/unsubscribe", **one_click)
    for name, answer in answers.items():
        assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0, name
        assert "try again" in answer.text and answer.headers["X-Frame-Options"] == "DENY", name
    assert again.status_code == 200  # once the lock is free the same request works
    assert "Traceback" not in caplog.text and "database is busy" in caplog.text


# --- bursts and odd input: never a 500 -----------------------------------------------------------

def test_40_concurrent_signups_from_4_clients_are_all_answered(tmp_path, monkeypatch, template):
    with site(tmp_path, monkeypatch, template, "signups_per_client_hour = 100\nthreads = 8\n") as (url, db, _):
        barrier = threading.Barrier(40)
        answers: list = [None] * 40

        def sign_up(n: int) -> None:
            session = requests.Session()
            session.get_adapter("http://").init_poolmanager(1, 1, source_address=(f"127.0.0.{2 + n % 4}", 0))
            token = csrf(session.get(url + "/", timeout=20).text)
            barrier.wait(20)
            answers[n] = session.post(url + "/subscribe", data={"csrf_token": token, "email": f"p{n}@example.org"},
                                      timeout=60).status_code

        workers = [threading.Thread(target=sign_up, args=(n,)) for n in range(40)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(90)
        stored = db.execute("select count(*) from signups").fetchone()[0]
    assert answers == [200] * 40
    assert stored == 40


ODD_DIGITS = ["²", "①", "١", "٣²"]


@pytest.mark.parametrize("digit", ODD_DIGITS)
def test_non_ascii_digits_in_tokens_and_pages_are_a_400_without_a_traceback(tmp_path, monkeypatch, template, digit,
                                                                          caplog):
    caplog.set_level(logging.INFO)
    with site(tmp_path, monkeypatch, template) as (url, _, _):
        answers = [requests.get(url + path, params=params, timeout=10) for path, params in (
            ("/unsubscribe", {"token": f"{digit}.20000.c2ln"}), ("/preferences", {"token": f"1.{digit}.c2ln"}),
            ("/feedback", {"token": f"{digit}.1.cG1pZDox.c2ln"}), ("/confirm", {"token": f"1.{digit}.c2ln"}),
            ("/search", {"q": "rituximab", "page": digit}), ("/issues/2026-11-2" + digit, {}))]
        one_click = requests.post(url + "/unsubscribe", params={"token": f"{digit}.1.c2ln"},
                                  data="List-Unsubscribe=One-Click", timeout=10,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert [a.status_code for a in answers + [one_click]] == [400] * 7
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# --- headers on everything, and no Host reflection -----------------------------------------------

def _raw(url: str, request: bytes) -> tuple[int, dict, bytes]:
    import socket
    host, port = url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if length and len(body) >= int(length.group(1)):
                break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


SERVER_ERRORS = {
    413: b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
         b"Content-Length: 100000\r\n\r\n" + b"a" * 100000,
    431: b"GET / HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"j" * 20000 + b"\r\n\r\n",
    400: b"POST /unsubscribe HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
}


def test_the_servers_own_errors_carry_the_security_headers(tmp_path, monkeypatch, template):
    with site(tmp_path, monkeypatch, template) as (url, _, _):
        answers = {status: _raw(url, request) for status, request in SERVER_ERRORS.items()}
    for status, (got, headers, _) in answers.items():
        assert got == status
        assert "default-src 'none'" in headers["content-security-policy"], status
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff", status
        assert headers["referrer-policy"] == "same-origin" and headers["cache-control"] == "no-store", status


@pytest.mark.parametrize("path", ["//static//style.css", "/static//style.css", "//healthz", "//evil.example/",
                                  "/issues/", "/search/"])
def test_no_answer_builds_a_location_from_the_host_header(tmp_path, monkeypatch, template, path):
    with site(tmp_path, monkeypatch, template) as (url, _, _):
        status, headers, body = _raw(url, f"GET {path} HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode())
    assert status in (200, 404), (path, status)
    assert "location" not in headers and b"evil.example" not in body
    assert "default-src 'none'" in headers["content-security-policy"]


# --- smaller ------------------------------------------------------------------------------------

def test_latest_digest_view_never_shows_a_subscribers_own_digest(tmp_path, monkeypatch, template):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    db = open_db(copy_db(template, tmp_path / "view.db"))
    config = web_config(tmp_path)
    build_digests(db, config, now=NOW)
    db.execute("delete from digest_items where digest_id in (select id from digests where subscriber_id is null)")
    db.execute("delete from digests where subscriber_id is null")  # as before the first public issue
    db.conn.commit()
    assert db.execute("select count(*) from digests where subscriber_id = 1").fetchone()[0] == 1
    assert list(db["latest_digest"].rows) == []
    db.close()


def test_a_curators_page_only_says_what_the_curator_said(tmp_path, monkeypatch, template):
    from bot.store.ranking import save_feedback
    with site(tmp_path, monkeypatch, template) as (url, db, _):
        add_subscriber(db, "cur@example.org", valid_themes=[], curator=True)
        save_feedback(db, "pmid:1", "irrelevant", note="label: maintainer")  # `spsbot label`
        token = make_feedback_token(SECRET, 2, "cur@example.org", "pmid:1")
        session = requests.Session()
        page = session.get(url + "/feedback", params={"token": token}, timeout=10).text
        assert "You said" not in page
        done = session.post(url + "/feedback", data={"csrf_token": csrf(page), "token": token, "vote": "relevant"},
                            timeout=10)
        assert "Recorded: <b>Relevant</b>" in done.text
        assert "You said: Relevant" in session.get(url + "/feedback", params={"token": token}, timeout=10).text


def test_unconfirmed_signups_are_forgotten_after_7_days_though_nobody_else_signs_up(tmp_path, monkeypatch):
    from bot.digest.confirmations import queue_signup
    from bot.web.mailer import SignupMailer
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    config = web_config(tmp_path, smtp_url="smtp://127.0.0.1:9")  # nothing listens: mail stays pending
    path = tmp_path / "old.db"
    db = open_db(path)
    queue_signup(db, config, "late@example.org", None, None)
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-30T06:00:01+00:00")  # 7 days and a second later
    mailer = SignupMailer(str(path), config, "http://sps.example.org", interval=0.05).start()
    try:
        for _ in range(200):
            if db.execute("select count(*) from signups").fetchone()[0] == 0:
                break
            time.sleep(0.05)  # not Event.wait: its timed wait hangs under libfaketime (the CI clock-ahead run)
    finally:
        mailer.stop()
    assert db.execute("select count(*) from signups").fetchone()[0] == 0
    db.close()


def test_spsbot_run_forgets_unconfirmed_signups_after_7_days_too(tmp_path, monkeypatch):
    """A deployment without the web front's mailer running (or with it down) keeps the promise."""
    from bot.digest.confirmations import queue_signup
    from bot.pipeline import run_weekly
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    config = web_config(tmp_path, smtp_url="smtp://127.0.0.1:9")
    db = open_db(tmp_path / "run.db")
    queue_signup(db, config, "late@example.org", None, None)
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-30T06:00:00+00:00")  # 7 days: kept until the 7 days are over
    queue_signup(db, config, "new@example.org", None, None)
    run_weekly(db, config, fetch=False, rank=False)
    assert [r[0] for r in db.execute("select email from signups order by id")] == \
        ["late@example.org", "new@example.org"]
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-30T06:00:01+00:00")  # 7 days and a second later
    run_weekly(db, config, fetch=False, rank=False)
    assert [r[0] for r in db.execute("select email from signups")] == ["new@example.org"]
    db.close()


def test_no_import_circle_in_bot_web():
    web = Path(__file__).resolve().parents[1] / "bot" / "web"
    imports = {}
    for path in web.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bot.web"):
                names |= {node.module} if node.module != "bot.web" else {f"bot.web.{a.name}" for a in node.names}
        imports[f"bot.web.{path.stem}"] = names

    def reaches(start: str, target: str, seen: set) -> bool:
        return any(n == target or (n not in seen and reaches(n, target, seen | {n})) for n in imports.get(start, ()))

    assert not [module for module in imports if reaches(module, module, {module})]
