"""Bad input through the REAL command line (the installed ``spsbot`` script, as a subprocess):
every user mistake is ONE line on stderr, no traceback, a non-zero exit, and nothing changed.

Config mistakes in depth (each error names the key and the line) are in tests/test_config.py;
here each kind is checked once more end to end. The lines printed as ``BAD INPUT LINE`` are the
ones quoted in docs/reliability.md.
"""

from __future__ import annotations

import json
import re

import pytest

from bot.config import load_config
from bot.digest.subscribers import add_subscriber
from bot.digest.tokens import make_token, secret_for
from bot.store import open_db
from conftest import clean_env, spsbot
from faults.helpers import error_lines, integrity

CONFIGS = {
    "config: unknown key": ("[digest]\nmax_itemz = 5\n", "unknown key 'max_itemz' in [digest] (line 2)"),
    "config: wrong type": ("[digest]\n\nmax_items = \"lots\"\n",
                           "'max_items' in [digest] must be an integer, got str (line 3)"),
    "config: out of range": ("[digest]\nmax_items = 500\n", "must be between 1 and 200, got 500 (line 2)"),
    "config: invalid TOML": ("[digest\nmax_items = 5\n", "invalid TOML"),
    "config: not an http(s) URL": ("[sources.pubmed]\nbase_url = \"ftp://x\"\n", "not an http(s) URL"),
    "config: unknown section": ("[bogus]\nx = 1\n", "unknown section [bogus]"),
}


def one_line_failure(result, expected: str, name: str) -> str:
    lines = error_lines(result.stderr)
    print(f"BAD INPUT LINE [{name}]: {lines[0] if lines else result.stderr!r}")
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and expected in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_mistake_is_one_line_naming_key_and_line(tmp_path, name):
    text, expected = CONFIGS[name]
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    result = spsbot("--config", path, "fetch", env=clean_env(tmp_path))
    one_line_failure(result, expected, name)


def test_missing_config_file_and_bad_env_url(tmp_path):
    one_line_failure(spsbot("--config", tmp_path / "nope.toml", "fetch", env=clean_env(tmp_path)),
                     "nope.toml", "config: missing file")
    one_line_failure(spsbot("fetch", env=clean_env(tmp_path, SPSBOT_EUTILS_URL="not a url")),
                     "not an http", "config: bad SPSBOT_EUTILS_URL")


SUBSCRIBE = {
    "unknown theme": (["ok@example.org", "--themes", "telepathy"], "unknown theme"),
    "address without a domain dot": (["ann@localhost"], "invalid e-mail address"),
    "not an address": (["not-an-address"], "invalid e-mail address"),
    "CR/LF header injection (Bcc)": (["ann@example.org\r\nBcc: victim@example.org"], "control characters"),
    "LF header injection (Subject)": (["ann@example.org\nSubject: you won"], "control characters"),
    "display-name form": (["Ann <ann@example.org>"], "invalid e-mail address"),
    "non-ASCII address": (["ann@exämple.org"], "non-ASCII"),
    "max-items out of range": (["ok@example.org", "--max-items", "100000"], "max"),
}


@pytest.mark.parametrize("name", list(SUBSCRIBE))
def test_bad_subscriber_is_refused_in_one_line_and_nothing_stored(tmp_path, name):
    args, expected = SUBSCRIBE[name]
    env = clean_env(tmp_path)
    one_line_failure(spsbot("subscribers", "add", *args, env=env), expected, f"subscribers add: {name}")
    db = open_db(tmp_path / "spsbot.db")
    assert db["subscribers"].count == 0 and integrity(db) == "ok"


def test_header_injection_in_the_display_name_cannot_add_a_header_or_recipient(tmp_path):
    """A name is free text, so it is not refused; CR/LF must not survive into the To: header."""
    from conftest import SmtpServer
    from digest_support import NOW, paper, seed
    env = clean_env(tmp_path, SPSBOT_NOW=NOW)
    added = spsbot("subscribers", "add", "ann@example.org", "--name", "Ann\r\nBcc: victim@example.org", env=env)
    assert added.returncode == 0, added.stderr
    db = open_db(tmp_path / "spsbot.db")
    seed(db, [paper(1, "Rituximab in stiff person syndrome")])
    db.close()
    with SmtpServer() as smtp:
        sent = spsbot("run", "--no-fetch", "--no-rank", env={**env, "SPSBOT_SMTP_URL": smtp.url})
        assert sent.returncode == 0, sent.stderr
        assert smtp.recipients() == ["ann@example.org"]
        message = smtp.messages[0]
    assert message["Bcc"] is None and "victim" not in (message["To"] or "").split("<")[-1]
    assert all("\r" not in value and "\n" not in value for _, value in message.items())


OTHER_MISTAKES = {
    "search: unknown theme": (["search", "--no-semantic", "--theme", "telepathy", "baclofen"], "unknown theme"),
    "search: impossible date": (["search", "--no-semantic", "--since", "2024-13-45", "baclofen"], "2024-13-45"),
    "digest preview: CR/LF in the address": (["digest", "preview", "--to", "a@example.org\r\nBcc: x@example.org"],
                                             "control characters"),
    "label: unknown theme": (["label", "pmid:1", "relevant", "--theme", "telepathy"], "unknown theme"),
}


@pytest.mark.parametrize("name", list(OTHER_MISTAKES))
def test_other_cli_mistakes_are_one_line(tmp_path, name):
    args, expected = OTHER_MISTAKES[name]
    open_db(tmp_path / "spsbot.db").close()  # the mistake is in the arguments, not a missing database
    one_line_failure(spsbot(*args, env=clean_env(tmp_path)), expected, name)


def test_broken_jsonl_line_for_score_names_the_line(tmp_path):
    lines = [json.dumps({"id": "a", "title": "Rituximab in SPS"}), json.dumps({"id": "b", "title": "GAD65"}),
             '{"id": "c", "title": "broken', json.dumps({"id": "d", "title": "fine"})]
    path = tmp_path / "papers.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = spsbot("score", path, env=clean_env(tmp_path))
    one_line_failure(result, "line 3: not valid JSON", "score: broken JSON Lines line")
    assert result.stdout == ""  # nothing half-scored on stdout
    path.write_text(lines[0] + "\n" + json.dumps({"id": "x", "pub_types": "Review"}) + "\n", encoding="utf-8")
    one_line_failure(spsbot("score", path, env=clean_env(tmp_path)),
                     "line 2: valid JSON, but not a record: a record needs", "score: record without title/text")


def test_forged_malformed_and_expired_unsubscribe_tokens(tmp_path):
    env = clean_env(tmp_path)
    assert spsbot("subscribers", "add", "ann@example.org", env=env).returncode == 0
    db = open_db(tmp_path / "spsbot.db")
    real = make_token(secret_for(db), 1, "ann@example.org")
    expired = make_token(secret_for(db), 1, "ann@example.org", now="2020-01-01T00:00:00+00:00")
    other = make_token(b"someone else's secret", 1, "ann@example.org")
    db.close()
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    cases = {"forged signature": (forged, "bad signature"), "signed with another secret": (other, "bad signature"),
             "malformed": ("1.2.3.4; DROP TABLE subscribers", "malformed"),
             "unknown subscriber": (real.replace("1.", "99.", 1), "bad signature"),
             "expired": (expired, "expired")}
    for name, (token, expected) in cases.items():
        one_line_failure(spsbot("unsubscribe", token, env=env), expected, f"unsubscribe: {name} token")
    db = open_db(tmp_path / "spsbot.db")
    assert db.execute("select status from subscribers").fetchone()[0] == "active"
    db.close()
    assert spsbot("unsubscribe", real, env=env).returncode == 0  # the genuine one still works


FTS_ATTACKS = ['"unbalanced', "NEAR(a b", "title:x OR abstract:*", "*", "'); DROP TABLE items; --",
               "a AND OR NOT b", "^rituximab", "{title abstract}: x", "x" * 5000, "\x00\x01 baclofen"]


def test_fts_injection_in_search_never_crashes_or_changes_the_store(tmp_path):
    from digest_support import paper, seed
    env = clean_env(tmp_path)
    db = open_db(tmp_path / "spsbot.db")
    seed(db, [paper(1, "Rituximab in stiff person syndrome", abstract="Intrathecal baclofen helped.")])
    before = [tuple(r) for r in db.execute("select id, content_hash from items")]
    db.close()
    for query in FTS_ATTACKS:
        result = spsbot("search", "--no-semantic", "--", query.replace("\x00", ""), env=env)
        assert "Traceback" not in result.stderr, (query, result.stderr)
        if result.returncode != 0:
            one_line_failure(result, "", f"search {query[:30]!r}")
    ok = spsbot("search", "--no-semantic", "--json", "baclofen", env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout)[0]["id"] == "pmid:1"
    db = open_db(tmp_path / "spsbot.db")
    assert [tuple(r) for r in db.execute("select id, content_hash from items")] == before
    assert integrity(db) == "ok"


def test_unreadable_database_file_is_one_line(tmp_path):
    garbage = tmp_path / "not-a-db.db"
    garbage.write_bytes(b"this is not an SQLite database\x00" * 64)
    one_line_failure(spsbot("--db", garbage, "status", env=clean_env(tmp_path)), "cannot open database",
                     "--db pointing at a non-SQLite file")


# --- hostile record content, from the wire to the subscriber's inbox -------------------------

HIDDEN = ["\u202e", "\u202d", "\u202a", "\u2066", "\u2067", "\u2068", "\u2069", "\u200f", "\x07", "\x1b", "\x00"]
LONG = "stiff " * 40000  # a 240 kB field


def _hostile_pubmed_article() -> str:
    """A real demo article whose title and abstract were replaced by hostile text (XML-escaped, as
    PubMed would deliver text that contains markup)."""
    from xml.sax.saxutils import escape
    from faults.helpers import demo_articles
    article = demo_articles()[0]
    title = escape('Rituximab <script>alert("t")</script> in SPS \u202eevil\u202c <a href="javascript:alert(1)">x</a>')
    abstract = escape('<img src=x onerror=alert(2)> GAD65 \u2066titres\u2069 fell. ' + LONG)
    article = re.sub(r"<ArticleTitle>.*?</ArticleTitle>", f"<ArticleTitle>{title}</ArticleTitle>", article,
                     count=1, flags=re.S)
    return re.sub(r"<Abstract>.*?</Abstract>", f"<Abstract><AbstractText>{abstract}</AbstractText></Abstract>",
                  article, count=1, flags=re.S)


HOSTILE_RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Hostile journal</title><link>https://example.org/</link>
<description>x</description>
<item>
  <title>Baclofen &lt;iframe src="https://evil.example/"&gt;&lt;/iframe&gt; \
trial \u202egnp.exe\u202c in stiff person syndrome</title>
  <link>javascript:alert(document.cookie)</link>
  <description>&lt;script&gt;steal()&lt;/script&gt;&lt;a href="javascript:void(0)"&gt;click&lt;/a&gt; \
Stiff person syndrome and \u2067IVIG\u2069.</description>
  <guid isPermaLink="false">hostile-1</guid>
  <pubDate>Thu, 19 Nov 2026 08:00:00 GMT</pubDate>
</item>
</channel></rss>"""


def test_hostile_records_fetched_over_http_are_rendered_safely_in_html_and_text(tmp_path):
    from bot.replay import LocalServer, Response
    from bot.replay.eutils import eutils_responder
    from conftest import SmtpServer
    from digest_support import parts

    feed = lambda request: Response(200, HOSTILE_RSS, "application/rss+xml; charset=utf-8")  # noqa: E731
    with LocalServer(eutils_responder([_hostile_pubmed_article()])) as eutils, LocalServer(feed) as rss, \
            SmtpServer() as smtp:
        config = tmp_path / "spsbot.toml"
        config.write_text('[topic]\nname = "SPS"\npubmed_query = "stiff person syndrome"\n'
                          f'feeds = [{{ url = "{rss.url}/feed.xml", name = "hostile" }}]\n'
                          "[sources.clinicaltrials]\nenabled = false\n", encoding="utf-8")
        env = clean_env(tmp_path, SPSBOT_CONFIG=config, SPSBOT_NOW="2026-11-21T06:00:00+00:00",
                        SPSBOT_EUTILS_URL=eutils.url + "/entrez/eutils", SPSBOT_SMTP_URL=smtp.url)
        fetched = spsbot("fetch", env=env)
        assert fetched.returncode == 0, fetched.stderr
        db = open_db(tmp_path / "spsbot.db")
        ids = [r[0] for r in db.execute("select id from items")]
        assert len(ids) == 2 and any(len(r[0] or "") > 200000 for r in db.execute("select abstract from items"))
        with db.conn:  # score both as relevant, as the ranker would (no model needed here)
            for item_id in ids:
                db.execute("insert into scores (item_id, relevance, relevant, themes, labels, why, evidence) "
                           "values (?, 0.9, 1, ?, ?, 'about SPS', ?)",
                           [item_id, json.dumps({"symptomatic": 0.9}), json.dumps(["symptomatic"]),
                            json.dumps({"symptomatic": {"sentence": "Stiff person syndrome \u202eevil.",
                                                        "terms": []}})])
        add_subscriber(db, "ann@example.org", valid_themes=load_config(config, env={}).theme_names)
        db.close()
        sent = spsbot("run", "--no-fetch", "--no-rank", env=env)
        assert sent.returncode == 0, sent.stderr
        assert len(smtp.messages) == 1
        message = smtp.messages[0]
    text, html = parts(message)
    # Markup in a title is shown as text: escaped in HTML, literal (inert) in text/plain.
    assert 'Rituximab &lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt; in SPS' in html
    assert 'Rituximab <script>alert("t")</script> in SPS' in text
    # feedparser types that title text/plain (an <iframe> is no HTML it recognises in a title): its
    # characters are the title's own, shown as text, escaped.
    assert ("Baclofen &lt;iframe src=&#34;https://evil.example/&#34;&gt;&lt;/iframe&gt; trial gnp.exe in stiff "
            "person syndrome") in html
    lowered = html.lower()
    assert "<script" not in lowered and "<iframe" not in lowered and "<img" not in lowered
    assert "javascript:alert(document.cookie)" not in html + text  # the feed's link is not linked
    for char in HIDDEN:
        assert char not in html and char not in text, repr(char)
    assert "\x00" not in message.as_string()
    assert len(message.as_bytes()) < 200_000, "a 240 kB abstract must not be mailed whole"
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith(("https://", "http://", "mailto:")) for h in hrefs), hrefs
