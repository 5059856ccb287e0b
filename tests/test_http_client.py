"""The HTTP chokepoint (bot.sources.http.HttpClient) against a real server on 127.0.0.1."""

from __future__ import annotations

import logging

import pytest

from bot.replay import LocalServer, Response
from bot.sources.http import HttpClient, SourceError


def scripted(*responses: Response):
    """A responder that serves ``responses`` in order, then 200 "ok"."""
    queue = list(responses)

    def respond(request):
        return queue.pop(0) if queue else Response(200, "ok", "text/plain")
    return respond


class FakeClock:
    """A clock that only moves when the client sleeps (or a test advances it)."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client_for(server, **options) -> HttpClient:
    options.setdefault("min_interval", 0)
    options.setdefault("backoff", 0)
    return HttpClient(server.url, name="test", **options)


def test_retries_429_and_5xx_then_succeeds(fixtures):
    body = (fixtures / "pubmed" / "misc_biomcp_eutils_json_error_API_rate_limit_exceeded.json").read_text()
    sleeps = []
    with LocalServer(scripted(Response(429, body, "application/json"), Response(502, "bad gateway", "text/plain"),
                              Response(503, "", "text/plain"))) as server:
        client = client_for(server, sleep=sleeps.append, backoff=0.5)
        assert client.request("esearch.fcgi").text == "ok"
    assert client.requests_sent == 4 and len(server.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]   # exponential backoff


def test_retry_after_header_is_honoured():
    sleeps = []
    with LocalServer(scripted(Response(429, "slow down", "text/plain", headers={"Retry-After": "7"}))) as server:
        client_for(server, sleep=sleeps.append, backoff=0.5).request("x")
    assert sleeps == [7.0]


def test_other_4xx_fails_at_once_with_a_clear_message():
    with LocalServer(scripted(Response(400, '{"error":"Invalid query"}', "application/json"))) as server:
        client = client_for(server)
        with pytest.raises(SourceError, match=r"test .*/efetch.fcgi: HTTP 400 Bad Request: .*Invalid query"):
            client.request("efetch.fcgi")
    assert len(server.requests) == 1


def test_gives_up_after_max_retries(fixtures):
    body = (fixtures / "pubmed" / "misc_biomcp_eutils_json_error_API_rate_limit_exceeded.json").read_text()
    with LocalServer(scripted(*[Response(429, body, "application/json")] * 5)) as server:
        client = client_for(server, max_retries=2)
        with pytest.raises(SourceError, match="gave up after 3 attempts") as error:
            client.request("esummary.fcgi")
    assert len(server.requests) == 3
    assert "API rate limit exceeded" in str(error.value)
    assert "capture-host IP" not in str(error.value)   # NCBI echoes the api-key: never repeated


def test_dropped_connection_and_timeout_are_retried():
    with LocalServer(scripted(Response(200, "x" * 2000, cut_after=10),
                              Response(200, "late", "text/plain", delay=1.0))) as server:
        client = client_for(server, timeout=0.3)
        assert client.request("x").text == "ok"
    assert len(server.requests) == 3


def test_secret_params_never_appear_in_errors_or_logs(caplog):
    # spsbot's own loggers at DEBUG (urllib3's DEBUG lines quote GET URLs; PubMed sends the key by POST).
    caplog.set_level(logging.DEBUG, logger="bot")
    with LocalServer(scripted(Response(500, "echo api_key=SECRET123", "text/plain"),
                              Response(404, "no such thing: SECRET123", "text/plain"))) as server:
        client = client_for(server, default_params={"api_key": "SECRET123"}, secret_params=("api_key",))
        with pytest.raises(SourceError) as error:
            client.request("x")
    assert server.requests[0].param("api_key") == "SECRET123"   # it is sent ...
    assert "SECRET123" not in str(error.value) and "SECRET123" not in caplog.text   # ... never shown


def test_connection_refused_error_hides_the_key_in_the_url():
    with LocalServer(scripted()) as server:
        url = server.url
    client = HttpClient(url, name="test", min_interval=0, backoff=0, max_retries=1,
                        default_params={"api_key": "SECRET123"}, secret_params=("api_key",))
    with pytest.raises(SourceError, match="connection failed") as error:
        client.request("esearch.fcgi")
    assert "SECRET123" not in str(error.value)


def test_requests_are_spaced_by_min_interval():
    clock = FakeClock()
    with LocalServer(scripted()) as server:
        client = client_for(server, min_interval=0.34, sleep=clock.sleep, clock=clock)
        for _ in range(5):
            client.request("x")
            clock.now += 0.05   # the caller's own work between requests
    gaps = [b - a for a, b in zip(client.sent_at, client.sent_at[1:])]
    assert len(gaps) == 4 and all(gap >= 0.34 - 1e-9 for gap in gaps)
    assert clock.sleeps == pytest.approx([0.29] * 4)   # only the missing part of the interval is slept
