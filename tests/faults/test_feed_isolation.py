"""One feed's failure, whatever it is, is that feed's failure only: the other feeds are read and
stored, the run is partial, and each failed feed has its own one-line error."""

from __future__ import annotations

import json

from bot.fetch import fetch_all
from bot.replay import LocalServer, Response
from ctgov_helpers import make_config

HEALTHY = (__import__("pathlib").Path(__file__).parent.parent / "fixtures" / "rss"
           / "rss1_rdf_journal_of_pediatrics.xml").read_text(encoding="utf-8")


def test_any_failure_of_one_feed_leaves_the_other_feeds_alone(db, tmp_path):
    def respond(request):
        if request.path == "/bad-gzip":   # requests: ContentDecodingError
            return Response(200, b"\x1f\x8b\x08\x00not gzip", "application/rss+xml",
                            headers={"Content-Encoding": "gzip"})
        if request.path == "/loop":       # requests: TooManyRedirects
            return Response(302, "", "text/plain", headers={"Location": "/loop"})
        if request.path == "/moved":      # to another host: refused
            return Response(301, "", "text/plain", headers={"Location": "http://localhost:9/feed"})
        return Response(200, HEALTHY, "application/rdf+xml")

    with LocalServer(respond) as server:
        feeds = [{"url": f"{server.url}/bad-gzip", "name": "bad-gzip"}, {"url": f"{server.url}/loop", "name": "loop"},
                 {"url": f"{server.url}/moved", "name": "moved"},
                 {"url": "http://127.0.0.1:99999/feed", "name": "typo-port"},   # requests: InvalidURL
                 {"url": f"{server.url}/rdf", "name": "jpeds"}]
        config = make_config(tmp_path, server.url, condition="x", feeds=feeds)
        result = fetch_all(db, config, ["feeds"], feeds={"min_interval": 0, "backoff": 0})
    counts = result.counts["feeds"]
    assert counts["errors"] == 4 and counts["new"] == 1 and result.status == "partial"
    errors = dict(zip(["bad-gzip", "loop", "moved", "typo-port"], counts["feed_errors"]))
    for name, line in errors.items():
        print(f"FAULT LINE [feed {name}]: {line}")
        assert "\n" not in line and "Traceback" not in line
    assert "feed:bad-gzip" in errors["bad-gzip"] and "cannot be decoded" in errors["bad-gzip"]
    assert "feed:loop" in errors["loop"] and "more than 5 redirects" in errors["loop"]
    assert "feed:moved" in errors["moved"] and "to another host" in errors["moved"]
    assert "feed:typo-port" in errors["typo-port"]
    assert [json.loads(r["sources"]) for r in db["items"].rows] == [["feed:jpeds"]]
    run = next(db["runs"].rows)
    assert run["source"] == "feeds" and run["status"] == "partial"
