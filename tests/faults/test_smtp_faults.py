"""SMTP faults not already covered by tests/test_smtp_outbox.py (which proves: 5xx per recipient
marked while the batch goes on, 4xx deferred and retried, a drop mid-DATA reconnects once, a
second drop leaves the rest pending, auth failure without the password, refused sender).

Here, through the real ``spsbot`` script: the server refuses at connect (nothing listening),
greets with 554, or never greets at all. Each time: one line on stderr, exit 1, every delivery
still pending; and the next run against a healthy server delivers each message exactly once.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter

import pytest

from conftest import SmtpServer, clean_env, free_port, spsbot
from digest_support import NOW
from faults.helpers import delivery_statuses, error_lines, queue_digests

READERS = ("ann@example.org", "bob@example.org")


class RawSmtp:
    """A TCP server on 127.0.0.1 that misbehaves at the SMTP greeting: ``greeting`` is sent
    (then the connection is closed) or, if None, nothing is ever sent."""

    def __init__(self, greeting: bytes | None):
        self.greeting = greeting
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._held = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.greeting is None:
                self._held.append(conn)  # silent: keep it open, say nothing
                continue
            conn.sendall(self.greeting)
            conn.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()
        for conn in self._held:
            conn.close()

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"


def _env(tmp_path, url):
    config = tmp_path / "spsbot.toml"
    config.write_text("[email]\ntimeout = 1.0\n", encoding="utf-8")
    return clean_env(tmp_path, SPSBOT_NOW=NOW, SPSBOT_SMTP_URL=url, SPSBOT_CONFIG=config)


@pytest.mark.parametrize("fault", ["nothing listening", "554 at the greeting", "server never greets"])
def test_unusable_server_is_one_line_keeps_the_outbox_and_next_run_delivers_once(tmp_path, fault):
    db_path = tmp_path / "spsbot.db"
    queue_digests(db_path, READERS)
    if fault == "nothing listening":
        server = None
        url = f"smtp://127.0.0.1:{free_port()}"
    else:
        server = RawSmtp(b"554 5.3.2 no SMTP service here\r\n" if fault.startswith("554") else None).__enter__()
        url = server.url
    try:
        for command in (["digest", "send"], ["run", "--no-fetch", "--no-rank"]):
            result = spsbot(*command, env=_env(tmp_path, url))
            assert result.returncode == 1 and "Traceback" not in result.stderr
            if command[0] == "digest":
                lines = error_lines(result.stderr)
                assert len(lines) == 1 and lines[0].startswith("Error: cannot connect to smtp://127.0.0.1:")
            else:  # `run` logs its failure (cron mails stderr): one ERROR line says what went wrong
                lines = [line for line in result.stderr.splitlines() if " ERROR " in line]
                assert len(lines) == 1 and "run send: cannot connect to smtp://127.0.0.1:" in lines[0]
            print(f"FAULT LINE [smtp: {fault}, {' '.join(command)}]: {lines[0]}")
            assert delivery_statuses(db_path) == {r: "pending" for r in READERS}
        if server is not None:
            assert server.connections >= 2
    finally:
        if server is not None:
            server.__exit__()
    with SmtpServer() as healthy:
        result = spsbot("digest", "send", env=_env(tmp_path, healthy.url))
        assert result.returncode == 0 and result.stdout.strip() == "sent 2, failed 0, deferred 0"
        again = spsbot("digest", "send", env=_env(tmp_path, healthy.url))
        assert again.stdout.strip() == "sent 0, failed 0, deferred 0"
        assert Counter(healthy.recipients()) == Counter(READERS)
    assert delivery_statuses(db_path) == {r: "sent" for r in READERS}


def test_drop_mid_data_on_every_attempt_loses_nothing_over_three_runs(tmp_path):
    """The relay dies in DATA for the first three messages (across two runs): each run keeps what
    was not accepted; the third run delivers; nobody gets a message twice."""
    db_path = tmp_path / "spsbot.db"
    queue_digests(db_path, READERS)
    with SmtpServer(drop_data=(1, 2, 3)) as smtp:
        env = _env(tmp_path, smtp.url)
        first = spsbot("digest", "send", env=env)
        assert first.returncode == 0 and "deferred 2" in first.stdout  # dropped, reconnected, dropped again
        assert delivery_statuses(db_path) == {r: "pending" for r in READERS}
        second = spsbot("digest", "send", env=env)   # DATA #3 dropped, reconnect, then delivered
        third = spsbot("digest", "send", env=env)
        assert "Traceback" not in second.stderr + third.stderr
        assert Counter(smtp.recipients()) == Counter(READERS)
    assert delivery_statuses(db_path) == {r: "sent" for r in READERS}
