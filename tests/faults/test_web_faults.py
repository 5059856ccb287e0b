"""Hostile and broken HTTP against the REAL web front (waitress on 127.0.0.1, raw sockets).

The stdlib server behind the old ``serve-unsubscribe`` answered a malformed token or
``Content-Length: abc`` with a traceback and a dropped connection, gave every idle half-sent
request a thread of its own, and reset 18 of 100 concurrent POSTs. Here: every bad request gets
a complete HTTP answer (400/413/431), silent and trickling clients are cut off by the timeouts
(1 s in these tests), idle connections cost no worker thread, and bursts are queued, not reset.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from bot.digest.subscribers import import_csv
from bot.digest.tokens import make_token
from bot.store import open_db
from bot.web.app import create_app
from web_support import running, web_config

SECRET = b"fault-secret-0123456789abcdef-0123456789"


@contextmanager
def _server(tmp_path):
    """(base URL, host, port, db path) of a running web front with 100 subscribers."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPSBOT_SECRET", SECRET.decode())
        config = web_config(tmp_path)
        path = tmp_path / "faults.db"
        db = open_db(path)
        import_csv(db, "email\n" + "".join(f"s{n}@example.org\n" for n in range(100)), valid_themes=config.theme_names)
        db.close()
        with running(create_app(config, str(path)), config.web) as url:
            host, port = url.rsplit("//", 1)[1].split(":")
            yield url, host, int(port), path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the tests that change nothing."""
    with _server(tmp_path_factory.mktemp("web-faults")) as running_server:
        yield running_server


@pytest.fixture
def own_server(tmp_path):
    with _server(tmp_path) as running_server:
        yield running_server


def raw(host: str, port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes or the answer is complete."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = [line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")]
            if length and len(body) >= int(length[0]):
                break
    return data


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), f"no HTTP answer (connection dropped?): {answer[:80]!r}"
    return int(answer.split(b" ", 2)[1])


BAD_REQUESTS = {
    "malformed token": (b"GET /unsubscribe?token=1.2 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "token with bad percent-encoding": (b"GET /unsubscribe?token=%ZZ%FF.%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "token of 5,000 characters": (b"GET /unsubscribe?token=" + b"9" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "feedback token with bad base64 and UTF-8": (b"GET /feedback?token=1.20000.%FF%FE.sig HTTP/1.1\r\nHost: x\r\n\r\n",
                                                 400),
    "one-click POST with a forged token": (b"POST /unsubscribe?token=1.20000.AAAA HTTP/1.1\r\nHost: x\r\n"
                                           b"Content-Type: application/x-www-form-urlencoded\r\n"
                                           b"Content-Length: 26\r\n\r\nList-Unsubscribe=One-Click", 400),
    "Content-Length: abc": (b"POST /unsubscribe?token=1.20413.c2lnbmF0dXJl HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: abc\r\n\r\nList-Unsubscribe=One-Click", 400),
    "Content-Length: -5": (b"POST /unsubscribe HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
    "not HTTP at all": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n", 400),
    "a JSON body where a form is expected": (b"POST /feedback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                             b"Content-Length: 2\r\n\r\n{}", 400),
    "body over the limit (100 kB)": (b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                                     b"x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n" + b"a" * 100000, 413),
    "headers over the limit (20 kB)": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"j" * 20000 + b"\r\n\r\n", 431),
    "unknown method": (b"BREW /unsubscribe HTTP/1.1\r\nHost: x\r\n\r\n", 405),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_requests_get_a_complete_error_answer_never_a_traceback(server, name):
    _, host, port, path = server
    request, expected = BAD_REQUESTS[name]
    answer = raw(host, port, request)
    status_line = answer.split(b"\r\n", 1)[0].decode()
    print(f"WEB BAD INPUT [{name}]: {status_line}")
    assert status_of(answer) == expected
    assert b"Traceback" not in answer and b'File "' not in answer
    db = open_db(path)
    assert db.execute("select count(*) from subscribers where status = 'active'").fetchone()[0] == 100
    db.close()


def test_idle_half_sent_requests_hold_no_worker_and_are_closed_by_the_timeout(server):
    url, host, port, _ = server
    threads_before = threading.active_count()
    idle = []
    for _ in range(200):
        sock = socket.create_connection((host, port), timeout=5)
        sock.sendall(b"POST /unsubscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nList-Unsub")  # then silence
        idle.append(sock)
    try:
        started = time.monotonic()
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b"ok\n"  # served at once by one of the 4 workers
        assert time.monotonic() - started < 2
        assert threading.active_count() - threads_before < 5  # 200 idle clients, no thread each
        deadline = time.monotonic() + 8
        closed = 0
        for sock in idle:  # channel_timeout = 1 s: the server hangs up on every one of them
            sock.settimeout(max(deadline - time.monotonic(), 0.1))
            try:
                closed += sock.recv(1024) == b""
            except (ConnectionResetError, socket.timeout):
                pass
        assert closed == 200
    finally:
        for sock in idle:
            sock.close()


def test_a_request_trickling_in_is_cut_off_by_the_request_deadline(server):
    _, host, port, _ = server
    sock = socket.create_connection((host, port), timeout=5)
    started = time.monotonic()
    cut = False
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        while time.monotonic() - started < 6:  # a byte every 0.3 s: never silent for a whole second
            time.sleep(0.3)
            try:
                sock.sendall(b"X")
                sock.setblocking(False)
                if sock.recv(1024) == b"":
                    cut = True
                    break
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            finally:
                sock.setblocking(True)
    finally:
        sock.close()
    assert cut and time.monotonic() - started < 4  # request_timeout = 1 s, checked every second


def test_100_concurrent_one_click_posts_are_all_answered(own_server):
    _, host, port, path = own_server
    db = open_db(path)
    tokens = [make_token(SECRET, row[0], row[1]) for row in db.execute("select id, email from subscribers")]
    db.close()
    barrier = threading.Barrier(len(tokens))
    answers: list = [None] * len(tokens)

    def post(index: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=20)
        barrier.wait()
        try:
            conn.request("POST", f"/unsubscribe?token={tokens[index]}", body="List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            answers[index] = conn.getresponse().status
        except OSError as e:  # a reset, a refused connection: what the old server did to 18 of 100
            answers[index] = type(e).__name__
        finally:
            conn.close()

    workers = [threading.Thread(target=post, args=(i,)) for i in range(len(tokens))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert answers == [200] * 100
    db = open_db(path)
    assert db.execute("select count(*) from subscribers where status = 'unsubscribed'").fetchone()[0] == 100
    db.close()
