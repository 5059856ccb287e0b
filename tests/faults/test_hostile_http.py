"""Hostile HTTP servers against the one chokepoint (``bot.sources.http.HttpClient``), through the
real PubMed source where the credential matters: redirects that would leak the API key, bodies
trickled a byte at a time, a gzip bomb, and any other ``requests`` failure.

The one-line errors printed here (``FAULT LINE``) are the ones quoted in docs/reliability.md.
"""

from __future__ import annotations

import tracemalloc

import pytest

from bot.config import load_config
from bot.fetch import fetch_all
from bot.replay import LocalServer, Response
from bot.replay.eutils import eutils_responder
from bot.sources import pubmed
from bot.sources.http import HttpClient, SourceError
from digest_support import self_signed_cert
from faults.helpers import demo_articles
from faults.hostile import MB, HttpsServer, TrickleServer, gzip_bomb

KEY = "key-S3CRET-redirect-0042"
ARTICLES = demo_articles()[:5]


def _pubmed_client(url: str, **options):
    config = load_config(env={"SPSBOT_EUTILS_URL": url})
    options = {"min_interval": 0, "backoff": 0, "max_retries": 1, **options}
    return pubmed.configured_client(config, env={"NCBI_API_KEY": KEY}, **options)


def _redirect_to(target: str, status: int = 307):
    def respond(request):
        return Response(status, "", "text/plain", headers={"Location": target + request.path})
    return respond


def _one_line(error: SourceError, *must: str) -> str:
    text = str(error)
    assert "\n" not in text and KEY not in text, text
    for word in must:
        assert word in text, text
    return text


def test_redirect_to_another_host_is_refused_and_the_key_never_leaves(db):
    with LocalServer(eutils_responder(ARTICLES)) as elsewhere, \
            LocalServer(_redirect_to(elsewhere.url.replace("127.0.0.1", "localhost"))) as eutils:
        client = _pubmed_client(eutils.url)
        with pytest.raises(SourceError) as error:
            pubmed.esearch(client, "stiff person syndrome", "2026/01/01", "2026/11/20")
    line = _one_line(error.value, "refused a redirect (HTTP 307) to another host", "localhost")
    print(f"FAULT LINE [307 to another host]: {line}")
    assert eutils.requests[0].param("api_key") == KEY     # sent to the configured server …
    assert elsewhere.requests == []                       # … never to where it pointed
    assert len(eutils.requests) == 1                      # not retried either


def test_https_endpoint_redirecting_to_http_is_refused(tmp_path, monkeypatch):
    cert = self_signed_cert(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert[0])     # trust the test certificate like a real CA
    with LocalServer(eutils_responder(ARTICLES)) as plain:
        port = plain.url.rsplit(":", 1)[1]
        with HttpsServer(_redirect_to(f"http://127.0.0.1:{port}", 308), cert) as secure:
            client = _pubmed_client(secure.url)
            with pytest.raises(SourceError) as error:
                pubmed.esearch(client, "stiff person syndrome", "2026/01/01", "2026/11/20")
    line = _one_line(error.value, "from https to plain http")
    print(f"FAULT LINE [https to http]: {line}")
    assert secure.requests[0].param("api_key") == KEY and plain.requests == []


def test_a_redirect_within_the_host_is_followed_without_the_key():
    def respond(request):
        if request.path.endswith("/old/esearch.fcgi"):
            return Response(307, "", "text/plain", headers={"Location": "/new/esearch.fcgi"})
        return eutils_responder(ARTICLES)(request)
    with LocalServer(respond) as server:
        client = _pubmed_client(server.url + "/old")
        found = pubmed.esearch(client, "stiff person syndrome", "2024/01/01", "2026/11/20")
    assert found.count == len(ARTICLES)
    first, second = server.requests
    assert first.param("api_key") == KEY and second.path == "/new/esearch.fcgi"
    assert second.param("api_key") is None and second.param("term")  # the query, never the credential


@pytest.mark.parametrize("slow_headers", [False, True], ids=["body trickled", "headers trickled"])
def test_an_answer_trickled_a_byte_at_a_time_hits_the_request_deadline(slow_headers):
    # A byte every 50 ms never trips the 1 s per-read timeout; only a deadline on the whole stops it.
    with TrickleServer(interval=0.05, slow_headers=slow_headers) as server:
        client = HttpClient(server.url, name="pubmed", min_interval=0, backoff=0, max_retries=1,
                            timeout=1.0, deadline=0.3)
        with pytest.raises(SourceError) as error:
            client.request("efetch.fcgi")
    line = _one_line(error.value, "0.3s deadline", "gave up after 2 attempts")
    print(f"FAULT LINE [trickled {'headers' if slow_headers else 'body'}]: {line}")
    assert server.connections == 2


def test_a_gzip_bomb_is_refused_without_being_inflated(db):
    bomb = gzip_bomb(64)                                   # 64 kB on the wire, 64 MB inflated
    assert len(bomb) < MB
    body = Response(200, bomb, "text/xml", headers={"Content-Encoding": "gzip"})
    inner = eutils_responder(ARTICLES)

    def respond(request):
        return body if request.path.endswith("efetch.fcgi") else inner(request)

    config_file_text = "[http]\nmax_response_mb = 1\n"     # the cap is configurable (default 200 MB)
    with LocalServer(respond) as server:
        config = load_config(_write(db, config_file_text), env={"SPSBOT_EUTILS_URL": server.url})
        client = pubmed.configured_client(config, env={}, min_interval=0, backoff=0, max_retries=1)
        tracemalloc.start()
        try:
            result = fetch_all(db, config, ["pubmed"], pubmed={"client": client, "window_end": "2026/11/20"})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    error = result.errors["pubmed"]
    print(f"FAULT LINE [gzip bomb]: {error}")
    assert "larger than the 1 MB limit once decompressed" in error and "\n" not in error
    assert peak < 16 * MB, f"{peak / MB:.0f} MB allocated: the bomb was inflated"
    assert db.execute("select count(*) from items").fetchone()[0] == 0


def test_an_undecodable_body_is_a_source_error_not_a_crash():
    garbage = Response(200, b"\x1f\x8b\x08\x00this is not gzip at all", "text/xml",
                       headers={"Content-Encoding": "gzip"})
    with LocalServer(lambda request: garbage) as server:
        client = HttpClient(server.url, name="feed 127.0.0.1", min_interval=0, backoff=0, max_retries=1)
        with pytest.raises(SourceError) as error:   # requests alone raises ContentDecodingError here
            client.request("feed.xml")
    _one_line(error.value, "cannot be decoded", "gave up after 2 attempts")


def _write(db, text: str):
    path = db.execute("PRAGMA database_list").fetchone()[2] + ".toml"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
