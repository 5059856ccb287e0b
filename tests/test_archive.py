"""The static archive: one page per public issue, an index, and an Atom feed that parses back."""

import feedparser
from click.testing import CliRunner

from bot.cli import cli
from bot.config import load_config
from bot.digest.archive import build_archive
from bot.digest.builder import build_digests
from bot.store import open_db
from digest_support import NOW, paper, seed

WEEK2 = "2026-11-30T06:00:00+00:00"


def test_archive_pages_index_and_atom_feed(db, tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    config_file = tmp_path / "c.toml"
    config_file.write_text('[digest]\narchive_url = "https://sps.example.org/digest/"\n', encoding="utf-8")
    config = load_config(config_file)
    seed(db, [paper(1, "Week one <b>bold</b> & co", abstract="<script>x</script>")])
    build_digests(db, config)  # no subscribers: the public issue is still built
    seed(db, [paper(2, "Week two paper", date="2026-11-28")], now=WEEK2)
    build_digests(db, config, now=WEEK2)
    build_digests(db, config, now=WEEK2)  # not due again
    out = tmp_path / "site"
    result = build_archive(db, config, out)
    assert result["issues"] == 2
    pages = sorted(p.name for p in out.glob("2026-*.html"))
    assert len(pages) == 2 and pages[0].startswith("2026-11-23") and pages[1].startswith("2026-11-30")
    week_one = (out / pages[0]).read_text(encoding="utf-8")
    assert "Week one &lt;b&gt;bold&lt;/b&gt; &amp; co" in week_one and "Week two paper" not in week_one
    assert "Unsubscribe" not in week_one and "@" not in week_one  # public: nothing about a subscriber
    index = (out / "index.html").read_text(encoding="utf-8")
    assert all(p in index for p in pages) and 'href="https://sps.example.org/digest/feed.atom"' in index

    feed = feedparser.parse((out / "feed.atom").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "SPS digest – Stiff Person Syndrome"
    assert [e.link for e in feed.entries] == [f"https://sps.example.org/digest/{p}" for p in reversed(pages)]
    assert feed.entries[0].title == "SPS digest — 1 new paper (24–30 Nov 2026)"
    assert feed.entries[0].updated_parsed[:3] == (2026, 11, 30)
    assert "Week two paper" in feed.entries[0].content[0].value
    assert "<script>" not in feed.entries[1].content[0].value  # the hostile abstract never appears as markup


def test_archive_cli_with_no_issues(env_isolated, tmp_path):
    open_db(env_isolated / "cli.db").close()  # a database with no issue yet (a missing one is refused)
    result = CliRunner().invoke(cli, ["archive", "build", str(tmp_path / "site")])
    assert result.exit_code == 0 and "0 issue(s)" in result.output
    feed = feedparser.parse((tmp_path / "site" / "feed.atom").read_bytes())
    assert not feed.bozo and feed.entries == []
