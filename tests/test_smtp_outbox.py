"""The SMTP outbox against a real aiosmtpd server on 127.0.0.1: delivery, headers, refusals,
dropped connections, temporary failures, bounces, re-runs, authentication."""

import pytest

from bot.config import load_config
from bot.digest.builder import build_digests
from bot.digest.send import SendError, send_pending
from bot.digest.subscribers import add_subscriber
from conftest import SmtpServer
from digest_support import NOW, paper, parts, seed, self_signed_cert

HOSTILE = "<script>alert(1)</script> & <b>"


def _config(tmp_path, monkeypatch, server, **email):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    monkeypatch.setenv("SPSBOT_SMTP_URL", server.url)
    monkeypatch.setenv("SPSBOT_SMTP_FROM", "SPS digest <digest@sps.example.org>")
    lines = ["[email]", 'unsubscribe_url = "https://sps.example.org/unsubscribe"',
             'unsubscribe_mailto = "unsubscribe@sps.example.org"']
    lines += [f"{k} = {str(v).lower()}" if isinstance(v, bool) else f'{k} = "{v}"' for k, v in email.items()]
    path = tmp_path / "spsbot.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


def _subscribers(db, config, n):
    emails = [f"reader{i}@example.org" for i in range(1, n + 1)]
    for address in emails:
        add_subscriber(db, address, valid_themes=config.theme_names, name=f"Reader {address[6]}")
    return emails


def _statuses(db):
    return {r["email"]: r["status"] for r in db.query(
        "select s.email, d.status from deliveries d join subscribers s on s.id = d.subscriber_id")}


def test_messages_arrive_with_both_parts_headers_links_and_escaping(db, tmp_path, monkeypatch):
    with SmtpServer() as server:
        config = _config(tmp_path, monkeypatch, server)
        seed(db, [paper(1, "IVIG & plasma <exchange> in SPS", abstract=HOSTILE, sentence=HOSTILE,
                        doi="10.1000/sps.1")])
        add_subscriber(db, "ann@example.org", valid_themes=config.theme_names, name="Ann Example")
        build_digests(db, config)
        result = send_pending(db, config)
        assert (result.sent, result.failed, result.deferred) == (1, 0, 0)
        [message] = server.messages
    assert server.handler.envelopes == [("digest@sps.example.org", ["ann@example.org"])]
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "SPS digest — 1 new paper (17–23 Nov 2026)"
    assert message["To"] == "Ann Example <ann@example.org>"
    stored_id = list(db.query("select message_id from deliveries"))[0]["message_id"]
    assert message["Message-ID"] == stored_id and stored_id.endswith("@sps.example.org>")
    unsub = message["List-Unsubscribe"]
    assert unsub.startswith("<https://sps.example.org/unsubscribe?token=1.")
    assert "<mailto:unsubscribe@sps.example.org?subject=unsubscribe%201." in unsub
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = parts(message)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in html
    assert "IVIG &amp; plasma &lt;exchange&gt; in SPS" in html
    assert HOSTILE in text  # plain text shows the record's own characters
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/1/"' in html and 'href="https://doi.org/10.1000/sps.1"' in html
    assert "https://pubmed.ncbi.nlm.nih.gov/1/" in text
    assert db["deliveries"].get(1)["status"] == "sent"
    assert [r["sent_at"] for r in db["sent_items"].rows] == [NOW]


def test_refused_third_recipient_is_marked_and_the_batch_goes_on(db, tmp_path, monkeypatch):
    with SmtpServer(refuse_rcpt={3}) as server:
        config = _config(tmp_path, monkeypatch, server)
        seed(db, [paper(1, "A paper")])
        emails = _subscribers(db, config, 5)
        build_digests(db, config)
        result = send_pending(db, config)
        assert (result.sent, result.failed) == (4, 1)
        assert sorted(server.recipients()) == sorted(e for e in emails if e != "reader3@example.org")
        assert server.handler.connections == 1  # one connection for the batch
        statuses = _statuses(db)
        assert statuses["reader3@example.org"] == "bounced"
        assert list(db.query("select bounces from subscribers where email = 'reader3@example.org'"))[0]["bounces"] == 1
        assert not list(db.query("select * from sent_items where subscriber_id = 3"))  # items released
        again = send_pending(db, config)
        assert (again.sent, again.failed) == (0, 0) and len(server.messages) == 4


def test_connection_dropped_mid_batch_reconnects_and_sends_each_once(db, tmp_path, monkeypatch):
    with SmtpServer(drop_data={3}) as server:
        config = _config(tmp_path, monkeypatch, server)
        seed(db, [paper(1, "A paper")])
        emails = _subscribers(db, config, 5)
        build_digests(db, config)
        result = send_pending(db, config)
        assert (result.sent, result.deferred) == (5, 0)
        assert sorted(server.recipients()) == sorted(emails)
        assert server.handler.connections == 2


def test_second_drop_leaves_the_rest_pending_for_the_next_run(db, tmp_path, monkeypatch):
    with SmtpServer(drop_data={2, 3}) as server:
        config = _config(tmp_path, monkeypatch, server)
        seed(db, [paper(1, "A paper")])
        emails = _subscribers(db, config, 5)
        build_digests(db, config)
        first = send_pending(db, config)
        assert (first.sent, first.deferred) == (1, 4)
        assert list(_statuses(db).values()).count("pending") == 4
        second = send_pending(db, config)  # the next run
        assert (second.sent, second.deferred) == (4, 0)
        third = send_pending(db, config)
        assert third.sent == 0
        assert sorted(server.recipients()) == sorted(emails)  # every subscriber exactly once


def test_temporary_failure_stays_pending_and_is_retried(db, tmp_path, monkeypatch):
    with SmtpServer(defer_rcpt={1}) as server:
        config = _config(tmp_path, monkeypatch, server)
        seed(db, [paper(1, "A paper")])
        _subscribers(db, config, 2)
        build_digests(db, config)
        first = send_pending(db, config)
        assert (first.sent, first.deferred, first.failed) == (1, 1, 0)
        row = list(db.query("select status, attempts, last_error from deliveries where subscriber_id = 1"))[0]
        assert row["status"] == "pending" and row["attempts"] == 1 and row["last_error"].startswith("451")
        second = send_pending(db, config)
        assert second.sent == 1
        assert sorted(server.recipients()) == ["reader1@example.org", "reader2@example.org"]
        ids = [m["Message-ID"] for m in server.messages]
        assert len(set(ids)) == 2


def test_rerun_of_build_and_send_sends_nothing_twice(db, tmp_path, monkeypatch):
    with SmtpServer() as server:
        config = _config(tmp_path, monkeypatch, server)
        seed(db, [paper(1, "A paper")])
        _subscribers(db, config, 3)
        for _ in range(3):
            build_digests(db, config)
            send_pending(db, config)
        assert len(server.messages) == 3
        assert db["digests"].count_where("subscriber_id is not null") == 3


def test_three_hard_bounces_mark_the_subscriber_bouncing(db, tmp_path, monkeypatch):
    with SmtpServer(refuse_addresses={"reader2@example.org"}) as server:
        config = _config(tmp_path, monkeypatch, server)
        _subscribers(db, config, 2)
        for week, now in enumerate(["2026-11-23T06:00:00+00:00", "2026-11-30T06:00:00+00:00",
                                    "2026-12-07T06:00:00+00:00", "2026-12-14T06:00:00+00:00"]):
            monkeypatch.setenv("SPSBOT_NOW", now)
            seed(db, [paper(100 + week, f"Paper of week {week}", date=now[:10])], now=now)
            build_digests(db, config, now=now)
            send_pending(db, config)
        status = {r["email"]: r["status"] for r in db["subscribers"].rows}
        assert status == {"reader1@example.org": "active", "reader2@example.org": "bouncing"}
        assert db["deliveries"].count_where("subscriber_id = 2") == 3  # no 4th attempt once bouncing
        assert server.recipients() == ["reader1@example.org"] * 4


def test_authentication_error_never_contains_the_password(db, tmp_path, monkeypatch):
    with SmtpServer(auth={"digest": "right-password"}) as server:  # plain SMTP on loopback: allowed explicitly
        config = _config(tmp_path, monkeypatch, server, username="digest", allow_plaintext_auth=True)
        seed(db, [paper(1, "A paper")])
        _subscribers(db, config, 1)
        build_digests(db, config)
        monkeypatch.setenv("SPSBOT_SMTP_PASSWORD", "wrong-secret-xyz")
        with pytest.raises(SendError) as e:
            send_pending(db, config)
        assert "wrong-secret-xyz" not in str(e.value) and "authentication failed" in str(e.value)
        assert list(_statuses(db).values()) == ["pending"]
        monkeypatch.setenv("SPSBOT_SMTP_PASSWORD", "right-password")
        assert send_pending(db, config).sent == 1


def test_dry_run_and_single_recipient(db, tmp_path, monkeypatch):
    with SmtpServer() as server:
        config = _config(tmp_path, monkeypatch, server)
        seed(db, [paper(1, "A paper")])
        _subscribers(db, config, 2)
        build_digests(db, config)
        dry = send_pending(db, config, dry_run=True)
        assert [d["to"] for d in dry.dry_run] == ["reader1@example.org", "reader2@example.org"]
        assert server.messages == [] and list(_statuses(db).values()) == ["pending", "pending"]
        assert send_pending(db, config, email="reader2@example.org").sent == 1
        assert server.recipients() == ["reader2@example.org"]


@pytest.mark.parametrize("tls", ["starttls", "smtps"])
def test_tls_modes_with_authentication(db, tmp_path, monkeypatch, tls):
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # the client verifies the server like any other CA-signed one
    with SmtpServer(tls=tls, cert=(cert, key), auth={"digest": "s3cret"}) as server:
        config = _config(tmp_path, monkeypatch, server, username="digest")
        monkeypatch.setenv("SPSBOT_SMTP_PASSWORD", "s3cret")
        seed(db, [paper(1, "A paper")])
        _subscribers(db, config, 2)
        build_digests(db, config)
        assert send_pending(db, config).sent == 2
        assert sorted(server.recipients()) == ["reader1@example.org", "reader2@example.org"]


def test_tls_certificate_is_verified(db, tmp_path, monkeypatch):
    cert, key = self_signed_cert(tmp_path)  # not trusted: no SSL_CERT_FILE
    with SmtpServer(tls="smtps", cert=(cert, key)) as server:
        config = _config(tmp_path, monkeypatch, server)
        seed(db, [paper(1, "A paper")])
        _subscribers(db, config, 1)
        build_digests(db, config)
        with pytest.raises(SendError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            send_pending(db, config)
        assert server.messages == []


def test_rejected_message_fails_without_counting_a_bounce(db, tmp_path, monkeypatch):
    with SmtpServer(reject_data={1}) as server:
        config = _config(tmp_path, monkeypatch, server)
        seed(db, [paper(1, "A paper")])
        _subscribers(db, config, 2)
        build_digests(db, config)
        result = send_pending(db, config)
        assert (result.sent, result.failed) == (1, 1)
        assert _statuses(db)["reader1@example.org"] == "failed"
        assert [r["bounces"] for r in db["subscribers"].rows] == [0, 0]


def test_refused_sender_stops_the_batch_and_keeps_everything_pending(db, tmp_path, monkeypatch):
    with SmtpServer(refuse_sender=True) as server:
        config = _config(tmp_path, monkeypatch, server)
        seed(db, [paper(1, "A paper")])
        _subscribers(db, config, 3)
        build_digests(db, config)
        with pytest.raises(SendError, match="refused the sender"):
            send_pending(db, config)
        assert set(_statuses(db).values()) == {"pending"}
        assert [r["bounces"] for r in db["subscribers"].rows] == [0, 0, 0]


def test_smtp_settings_from_url_and_env():
    from types import SimpleNamespace

    from bot.digest.send import SmtpSettings
    config = SimpleNamespace(email={"smtp_url": "smtp+starttls://mail.example.org", "username": "digest"})
    settings = SmtpSettings.from_config(config, env={"SPSBOT_SMTP_PASSWORD": "pw-123"})
    assert (settings.scheme, settings.host, settings.port, settings.username) == (
        "smtp+starttls", "mail.example.org", 587, "digest")
    assert "pw-123" not in repr(settings) and "pw-123" not in settings.describe()
    assert SmtpSettings.from_config(SimpleNamespace(email={"smtp_url": "smtps://mail.example.org"}), env={}).port == 465
    with pytest.raises(SendError, match="must not contain a password"):
        SmtpSettings.from_config(SimpleNamespace(email={"smtp_url": "smtp://u:secret@mail.example.org"}), env={})
