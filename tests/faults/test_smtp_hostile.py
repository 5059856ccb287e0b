"""E-mail faults from issue 12, against a real aiosmtpd server on 127.0.0.1: AUTH over plain SMTP,
a display name that folds into an over-long header line, deliveries refused for good (and the
exit status that must say so), and a database write that fails right after the server's 250.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from email.header import decode_header, make_header

import pytest
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner

from bot.cli import cli
from bot.config import load_config
from bot.digest.builder import build_digests
from bot.digest.send import SendError, send_pending
from bot.digest.subscribers import add_subscriber
from bot.store import open_db
from conftest import RecordingHandler, SmtpServer, clean_env, spsbot
from digest_support import NOW, paper, seed
from faults.helpers import delivery_statuses, queue_digests

READERS = ("ann@example.org", "bob@example.org", "cyd@example.org")


def _config(tmp_path, monkeypatch, url, **email):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    monkeypatch.setenv("SPSBOT_SMTP_URL", url)
    lines = ["[email]", "timeout = 2.0"] + [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}"
                                             for k, v in email.items()]
    path = tmp_path / "spsbot.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


def _queue(db, config, readers=READERS, names=None):
    seed(db, [paper(1, "Rituximab in stiff person syndrome")])
    for address in readers:
        add_subscriber(db, address, valid_themes=config.theme_names, name=(names or {}).get(address))
    build_digests(db, config, now=NOW)


class CountingAuth(SmtpServer):
    """aiosmtpd accepting AUTH without TLS (a loopback relay), counting the attempts."""

    def __init__(self):
        self.auth_attempts = 0

        def authenticator(server, session, envelope, mechanism, auth_data):
            self.auth_attempts += 1
            ok = (auth_data.login, auth_data.password) == (b"digest", b"s3cret-pw")
            return AuthResult(success=ok, handled=False)
        super().__init__(authenticator=authenticator)


def test_auth_over_plain_smtp_is_refused_unless_allowed(db, tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_SMTP_PASSWORD", "s3cret-pw")
    with CountingAuth() as server:
        config = _config(tmp_path, monkeypatch, server.url, username="digest")
        _queue(db, config, readers=READERS[:1])
        with pytest.raises(SendError) as error:
            send_pending(db, config)
        line = str(error.value)
        print(f"FAULT LINE [AUTH over plain smtp://]: {line}")
        assert "refusing to send the SMTP password without TLS" in line and "\n" not in line
        assert server.auth_attempts == 0 and server.handler.connections == 0   # not even connected
        assert delivery_statuses_in(db) == ["pending"]
        allowed = _config(tmp_path, monkeypatch, server.url, username="digest", allow_plaintext_auth=True)
        assert send_pending(db, allowed).sent == 1 and server.auth_attempts == 1


def delivery_statuses_in(db) -> list[str]:
    return [r[0] for r in db.execute("select status from deliveries order by id")]


def test_a_200_emoji_display_name_is_folded_and_delivered(db, tmp_path, monkeypatch):
    name = "\N{GRINNING FACE}" * 200
    with SmtpServer() as server:
        config = _config(tmp_path, monkeypatch, server.url)
        _queue(db, config, readers=READERS[:1], names={READERS[0]: name})
        result = send_pending(db, config)
        assert (result.sent, result.failed) == (1, 0), result.failures
        raw = server.handler.raw[0]
    header_lines = [line.decode() for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")]
    assert max(len(line) for line in header_lines) <= 998            # RFC 5322's hard limit
    start = next(i for i, line in enumerate(header_lines) if line.startswith("To: "))
    end = next(i for i in range(start + 1, len(header_lines)) if not header_lines[i].startswith(" "))
    assert max(len(line) for line in header_lines[start:end]) <= 78  # folded: the recommended limit
    to_value = "".join(header_lines[start:end])[len("To: "):]
    words = [w for w in to_value.split() if w.startswith("=?")]
    assert len(words) > 10 and all(len(w) <= 75 for w in words)     # RFC 2047: words of at most 75
    assert str(make_header(decode_header(to_value.rsplit(" <", 1)[0]))) == name


class RawRecordingHandler(RecordingHandler):
    def __init__(self, **behaviour):
        super().__init__(**behaviour)
        self.raw: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        if answer.startswith("250"):
            self.raw.append(envelope.original_content or envelope.content)
        return answer


@pytest.fixture(autouse=True)
def raw_messages(monkeypatch):
    """Every SmtpServer here keeps the raw bytes of what it accepted (``handler.raw``)."""
    monkeypatch.setattr("conftest.RecordingHandler", RawRecordingHandler)


def test_deliveries_refused_for_good_are_reported_in_the_exit_status(tmp_path):
    db_path = tmp_path / "spsbot.db"
    queue_digests(db_path, READERS)
    config = tmp_path / "spsbot.toml"
    config.write_text("[email]\ntimeout = 2.0\n", encoding="utf-8")
    with SmtpServer(refuse_addresses={"bob@example.org"}) as server:
        env = clean_env(tmp_path, SPSBOT_NOW=NOW, SPSBOT_SMTP_URL=server.url, SPSBOT_CONFIG=config)
        run = spsbot("run", "--no-fetch", "--no-rank", env=env)
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    print(f"FAULT LINE [a delivery refused for good, run]: {errors}")
    assert run.returncode == 4, run.stderr                          # partial: the rest went out
    assert len(errors) == 1 and "1 delivery failed for good: bob@example.org: 550" in errors[0]
    assert delivery_statuses(db_path) == {"ann@example.org": "sent", "bob@example.org": "bounced",
                                          "cyd@example.org": "sent"}
    db = open_db(db_path)
    row = db.execute("select status, error from runs where command = 'run'").fetchone()
    assert row[0] == "partial" and "bob@example.org: 550" in row[1]
    db.close()


def test_digest_send_exits_1_when_every_delivery_is_refused(tmp_path, monkeypatch):
    db_path = tmp_path / "spsbot.db"
    queue_digests(db_path, READERS[:2])
    with SmtpServer(refuse_rcpt={1, 2}) as server:
        monkeypatch.setenv("SPSBOT_DB", str(db_path))
        monkeypatch.setenv("SPSBOT_SMTP_URL", server.url)
        result = CliRunner().invoke(cli, ["digest", "send"])
    assert result.exit_code == 1, result.output
    assert "sent 0, failed 2" in result.output and "2 deliveries failed for good" in result.output


class LockingHandler(RawRecordingHandler):
    """Accepts each message (250) and, after the first, takes the database's write lock from
    another connection: the sender's next write, marking that message sent, fails."""

    def __init__(self, db_path, **behaviour):
        super().__init__(**behaviour)
        self.db_path, self.blocker = db_path, None

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        if self.blocker is None:
            self.blocker = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
            self.blocker.execute("BEGIN IMMEDIATE")   # a writer holds the file: like a failed write
        return answer


def test_a_failed_write_after_the_servers_250_resends_only_that_message_with_its_message_id(tmp_path, monkeypatch):
    db_path = tmp_path / "spsbot.db"
    queue_digests(db_path, READERS)
    db = open_db(db_path)
    db.execute("PRAGMA busy_timeout = 100")   # fail fast instead of waiting 10 s for the lock
    first = SmtpServer()
    first.handler = first.controller.handler = LockingHandler(str(db_path))
    with first:
        with pytest.raises(SendError) as error:
            send_pending(db, _config(tmp_path, monkeypatch, first.url))
    first.handler.blocker.rollback()
    first.handler.blocker.close()
    line = str(error.value)
    print(f"FAULT LINE [write fails after 250]: {line}")
    assert "accepted the digest to ann@example.org" in line and "re-sent next run with the same Message-ID" in line
    assert len(first.handler.raw) == 1 and delivery_statuses_in(db) == ["pending"] * 3  # sending stopped
    with SmtpServer() as second:
        config = _config(tmp_path, monkeypatch, second.url)
        result = send_pending(db, config)
        assert result.sent == 3 and len(result.commit_windows) == 3
        again = send_pending(db, config)
    assert again.sent == 0 and delivery_statuses_in(db) == ["sent"] * 3
    ids = [_message_id(raw) for raw in first.handler.raw + second.handler.raw]
    assert Counter(Counter(ids).values()) == {2: 1, 1: 2}   # one message twice (same Message-ID), others once
    assert _message_id(first.handler.raw[0]) == _message_id(second.handler.raw[0])
    db.close()


def _message_id(raw: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    return next(line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.lower().startswith("message-id:"))
