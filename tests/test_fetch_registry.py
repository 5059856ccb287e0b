"""The source registry (bot.fetch.registry) and what the fetch stage returns (SourceResult)."""

import json

from click.testing import CliRunner

from bot.cli import cli
from bot.config import SCHEMA, SOURCE_SETTINGS, load_config
from bot.fetch import FetchResult, SourceResult, enabled_sources
from bot.fetch.registry import SOURCES
from bot.replay import LocalServer
from bot.sources import clinicaltrials, pubmed
from bot.status import collect_status
from bot.store import recorded_run, save_items


def test_every_registered_source_is_complete():
    for name, source in SOURCES.items():
        assert source.name == name and callable(source.fetch) and callable(source.enabled)
        assert source.item_tag and source.item_tag.isidentifier()
        if source.settings is not None:  # feeds are configured by [topic] feeds
            assert source.settings in SOURCE_SETTINGS and source.settings in SCHEMA
    # every [sources.*] section the config accepts belongs to a registered source
    assert set(SOURCE_SETTINGS) == {s.settings for s in SOURCES.values() if s.settings}


def test_enabled_sources_follow_the_config(tmp_path):
    bundled = load_config(None, env={})
    assert enabled_sources(bundled) == [n for n in SOURCES if n != "feeds"]
    path = tmp_path / "c.toml"
    path.write_text('[topic]\nname = "X"\npubmed_query = "x"\nfeeds = ["https://example.org/rss"]\n'
                    "[sources.pubmed]\nenabled = false\n", encoding="utf-8")
    assert enabled_sources(load_config(path, env={})) == ["feeds"]


def test_fetch_command_offers_exactly_the_registered_sources():
    result = CliRunner().invoke(cli, ["fetch", "--source", "nosuch"])
    assert result.exit_code == 2
    for name in SOURCES:
        assert name in result.output


def test_demo_responders_serve_the_bundled_data():
    config = load_config(None, env={})
    with LocalServer(SOURCES["pubmed"].demo_responder()) as server:
        config.sections["sources.pubmed"]["base_url"] = server.url + "/entrez/eutils"
        client = pubmed.configured_client(config, env={}, min_interval=0)
        assert pubmed.search_ids(client, config.topic.pubmed_query, "1950/01/01", "2026/11/21", "crdt")
    with LocalServer(SOURCES["clinicaltrials"].demo_responder(2)) as server:
        client = clinicaltrials.make_client(server.url, min_interval=0)
        assert len(list(clinicaltrials.search_studies(client, condition="Stiff-Person Syndrome"))) == 6
    assert SOURCES["feeds"].demo_responder is None


def test_status_counts_items_by_the_registered_tag(db):
    save_items(db, [{"kind": "paper", "source": "feed:jpeds", "title": "A feed paper about SPS", "doi": "10.1/x"}],
               source="feed:jpeds")
    with recorded_run(db, "fetch", "feeds") as run:
        run.counts["new"] = 1
    report = collect_status(db, None, now="2026-11-21T07:00:00+00:00")
    feeds = next(s for s in report["sources"] if s["source"] == "feeds")
    assert feeds["newest_item_seen"] == "2026-11-21T06:00:00+00:00"  # "feed:jpeds" items count for "feeds"


def test_source_result_status():
    assert SourceResult({"new": 1}).status == "ok" and SourceResult().problem_line is None
    partial = SourceResult({"new": 1}, problems=["feed:a: HTTP 404", "feed:b: HTTP 500"])
    assert partial.status == "partial" and partial.problem_line == "feed:a: HTTP 404; feed:b: HTTP 500"
    summary = SourceResult({}, problems=["batch 1: HTTP 500"], error="1 batch/search error(s)")
    assert summary.problem_line == "1 batch/search error(s)"
    assert SourceResult(failure="SourceError: down").status == "failed"


def test_fetch_result_status_and_order():
    ok, partial, failed = SourceResult({"new": 2}), SourceResult({"new": 1}, problems=["x"]), \
        SourceResult(failure="SourceError: down")
    assert FetchResult({"pubmed": ok}).status == "ok"
    both = FetchResult({"pubmed": failed, "clinicaltrials": partial, "feeds": ok})
    assert both.status == "partial" and both.new_items == 3
    assert list(both.errors) == ["pubmed", "clinicaltrials"]  # in the order the sources ran
    assert set(both.counts) == {"clinicaltrials", "feeds"}
    assert FetchResult({"pubmed": failed}).status == "failed"


def test_recorded_run_writes_the_record_status_and_error(db):
    with recorded_run(db, "fetch", "pubmed") as run:
        run.counts.update(new=2, window="2026/11/01-2026/11/21")
        run.status, run.error = "partial", "1 batch/search error(s)"
    row = next(db["runs"].rows)
    assert (row["status"], row["error"]) == ("partial", "1 batch/search error(s)")
    assert json.loads(row["counts"]) == {"new": 2, "window": "2026/11/01-2026/11/21"}


def test_sources_and_replay_import_no_store():
    """bot.sources talks HTTP + parsing only, bot.replay emulates services: neither loads bot.store."""
    import subprocess
    import sys
    code = ("import sys, bot.sources.pubmed, bot.sources.clinicaltrials, bot.sources.feeds, bot.replay.eutils, "
            "bot.replay.ctgov, bot.links; bot.replay.eutils.store_today(); bot.replay.ctgov.demo_studies(2); "
            "print(sorted(m for m in sys.modules if m.startswith('bot.store')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
