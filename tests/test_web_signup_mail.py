"""Sign-up e-mails through a real SMTP server (aiosmtpd on 127.0.0.1): the confirmation link that
works, the preferences link for an address already subscribed, and an outbox that survives a
refusing or absent relay. Also the mailer thread of ``spsbot serve``."""

import time

from bot.digest.confirmations import queue_signup, send_signup_mails
from bot.digest.subscribers import add_subscriber
from bot.digest.tokens import verify_confirm_token, verify_token
from bot.store import open_db
from bot.web.mailer import SignupMailer
from conftest import SmtpServer, free_port
from digest_support import NOW, parts
from web_support import links, web_config

BASE = "https://sps.example.org"


def _setup(tmp_path, monkeypatch, smtp_url):
    monkeypatch.setenv("SPSBOT_SECRET", "mail-secret-0123456789abcdef-0123456789a")
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    config = web_config(tmp_path, f'base_url = "{BASE}"\n', smtp_url=smtp_url)
    return config, open_db(tmp_path / "mail.db")


HOSTILE_NAME = "URGENT: your account is suspended - verify at https://evil.example/login"


def test_confirmation_e_mail_carries_a_working_signed_link(tmp_path, monkeypatch):
    with SmtpServer() as smtp:
        config, db = _setup(tmp_path, monkeypatch, smtp.url)
        assert queue_signup(db, config, "new@example.org", HOSTILE_NAME, None) == "confirm"
        assert send_signup_mails(db, config, BASE) == {"sent": 1, "failed": 0, "deferred": 0}
        assert send_signup_mails(db, config, BASE)["sent"] == 0  # sent once, never again
    assert smtp.recipients() == ["new@example.org"]
    message = smtp.messages[0]
    assert message["Subject"] == "Confirm your subscription to the SPS digest"
    # nothing the visitor typed is mailed before the address confirmed: no name in To: or the text
    assert message["To"] == "new@example.org" and "digest@example.org" in message["From"]
    text, html = parts(message)
    assert "48 hours" in text
    assert "URGENT" not in message.as_string() and "evil.example" not in text + html
    url = links(text, "/confirm")[0]
    assert url.startswith(f"{BASE}/confirm?token=") and links(html, "/confirm") == [url]
    signup = verify_confirm_token(db, url.split("token=", 1)[1])
    assert signup["email"] == "new@example.org"
    assert db.execute("select mail_status, mail_sent_at from signups").fetchone() == ("sent", NOW)


def test_an_address_already_subscribed_gets_its_preferences_link_not_a_confirmation(tmp_path, monkeypatch):
    with SmtpServer() as smtp:
        config, db = _setup(tmp_path, monkeypatch, smtp.url)
        add_subscriber(db, "ann@example.org", valid_themes=config.theme_names, name="Ann")
        assert queue_signup(db, config, "ann@example.org", HOSTILE_NAME, None) == "manage"
        send_signup_mails(db, config, BASE)
    text, html = parts(smtp.messages[0])
    assert "already subscribed" in text and not links(text, "/confirm")
    assert "URGENT" not in smtp.messages[0].as_string() and "evil.example" not in text + html
    assert db.execute("select name from subscribers").fetchone()[0] == "Ann"
    token = links(text, "/preferences")[0].split("token=", 1)[1]
    assert verify_token(db, token, purpose="preferences")["email"] == "ann@example.org"


def test_refused_and_absent_relays_keep_the_outbox(tmp_path, monkeypatch):
    nowhere = f"smtp://127.0.0.1:{free_port()}"
    config, db = _setup(tmp_path, monkeypatch, nowhere)
    queue_signup(db, config, "a@example.org", None, None)
    queue_signup(db, config, "b@example.org", None, None)
    assert send_signup_mails(db, config, BASE) == {"sent": 0, "failed": 0, "deferred": 2}  # nothing listening
    with SmtpServer(refuse_addresses={"a@example.org"}) as smtp:
        config = web_config(tmp_path, f'base_url = "{BASE}"\n', smtp_url=smtp.url)
        assert send_signup_mails(db, config, BASE) == {"sent": 1, "failed": 1, "deferred": 0}
    assert smtp.recipients() == ["b@example.org"]
    assert dict(db.execute("select email, mail_status from signups").fetchall()) == {
        "a@example.org": "failed", "b@example.org": "sent"}


def test_the_mailer_thread_sends_when_woken(tmp_path, monkeypatch):
    with SmtpServer() as smtp:
        config, db = _setup(tmp_path, monkeypatch, smtp.url)
        mailer = SignupMailer(str(tmp_path / "mail.db"), config, BASE, interval=30).start()
        try:
            queue_signup(db, config, "new@example.org", None, None)
            mailer.wake()
            deadline = time.monotonic() + 10
            while not smtp.messages and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            mailer.stop()
    assert smtp.recipients() == ["new@example.org"]  # long before the 30 s poll


def test_old_signup_requests_are_forgotten(tmp_path, monkeypatch):
    config, db = _setup(tmp_path, monkeypatch, "smtp://127.0.0.1:25")
    queue_signup(db, config, "old@example.org", None, None)
    monkeypatch.setenv("SPSBOT_NOW", "2026-12-01T06:00:00+00:00")  # 8 days later
    queue_signup(db, config, "new@example.org", None, None)
    assert [r[0] for r in db.execute("select email from signups")] == ["new@example.org"]
