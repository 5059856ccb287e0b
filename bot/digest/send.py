"""Send queued digests over SMTP from the outbox (the ``deliveries`` table).

Each digest's delivery row is committed as *pending* (with its Message-ID) when the digest is
built, before any SMTP traffic; it becomes *sent* only after the server accepted the message.
So a crash or an SMTP failure leaves it pending and the next run retries it, and a delivered
message is never sent again. (If the process dies in the instant between the server's "250 OK"
and the commit, the retry re-sends the same Message-ID, which mail clients de-duplicate.)

One connection serves the whole batch; a dropped connection is re-opened once per batch.
A 5xx answer for a recipient fails that delivery (a hard bounce; after ``BOUNCE_LIMIT`` the
subscriber is marked bouncing) without stopping the batch; a 4xx answer leaves it pending.
The SMTP password is read from env ``SPSBOT_SMTP_PASSWORD`` only, never logged or stored, and
never sent over a connection without TLS unless ``[email] allow_plaintext_auth`` says the relay is
local. Before sending, the database must pass ``PRAGMA quick_check``: a corrupted outbox could
send a digest twice or to the wrong people.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import time
from contextlib import suppress
from dataclasses import dataclass, field
from email.utils import parseaddr
from urllib.parse import unquote, urlparse

import sqlite_utils

from bot.digest.render import build_message
from bot.faults import crash_point
from bot.redact import known_secrets, scrub
from bot.store import integrity_problem, loads
from bot.store import digests as store
from bot.errors import UserError, shorten
from bot.store.errors import StoreError

log = logging.getLogger(__name__)

BOUNCE_LIMIT = 3
DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
# The SPSBOT_SMTP_PASSWORD placeholders shipped in schedules/env.example: never a real password.
EXAMPLE_PASSWORDS = frozenset({"change-me"})


class SendError(UserError, RuntimeError):
    """SMTP is unusable (cannot connect, authentication refused); nothing more can be sent now."""


@dataclass
class SmtpSettings:
    scheme: str
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)  # never in repr/logs
    timeout: float = 30.0
    allow_plaintext_auth: bool = False

    @classmethod
    def from_config(cls, config, env=None) -> "SmtpSettings":
        env = os.environ if env is None else env
        email_cfg = config.email or {}
        url = email_cfg.get("smtp_url") or "smtp://127.0.0.1:25"
        parsed = urlparse(url)
        if parsed.scheme not in DEFAULT_PORTS or not parsed.hostname:
            raise SendError(f"smtp_url must be smtp://, smtp+starttls:// or smtps://host[:port], got {parsed.scheme}://…")
        if parsed.password:  # a password in a URL ends up in shell history, ps and logs
            raise SendError("smtp_url must not contain a password: set SPSBOT_SMTP_PASSWORD instead")
        username = email_cfg.get("username") or unquote(parsed.username or "")
        password = env.get("SPSBOT_SMTP_PASSWORD", "")
        if password.strip() in EXAMPLE_PASSWORDS:
            raise SendError("SPSBOT_SMTP_PASSWORD is the placeholder from schedules/env.example: set your SMTP "
                            "account's password, or delete the line if your server needs no login")
        return cls(scheme=parsed.scheme, host=parsed.hostname, port=parsed.port or DEFAULT_PORTS[parsed.scheme],
                   username=username, password=password,
                   timeout=float(email_cfg.get("timeout") or 30),
                   allow_plaintext_auth=bool(email_cfg.get("allow_plaintext_auth")))

    def describe(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def connect(settings: SmtpSettings) -> smtplib.SMTP:
    """Open and (if configured) authenticate one SMTP connection.

    AUTH over plain ``smtp://`` would send the password in clear (base64 is not encryption): it
    is refused before any connection is made unless ``allow_plaintext_auth`` is set.
    """
    if settings.username and settings.scheme == "smtp" and not settings.allow_plaintext_auth:
        raise SendError(f"refusing to send the SMTP password without TLS to {settings.describe()}: use "
                        "smtp+starttls:// or smtps://, or set allow_plaintext_auth = true in [email] "
                        "for a relay on this machine")
    failure = None
    try:
        if settings.scheme == "smtps":
            conn = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                    context=ssl.create_default_context())
        else:
            conn = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
            if settings.scheme == "smtp+starttls":
                # Made only for TLS: loading the system CA store costs ~40 ms per connection.
                conn.starttls(context=ssl.create_default_context())
        if settings.username:
            conn.login(settings.username, settings.password)
    except smtplib.SMTPAuthenticationError as e:
        # The server's own words, never the password (scrubbed in case a server echoes it).
        failure = _scrub(f"SMTP authentication failed for {settings.username!r} at {settings.describe()}: "
                         f"{e.smtp_code} {_text(e.smtp_error)} (check [email] username and SPSBOT_SMTP_PASSWORD)",
                         settings)
    except (OSError, smtplib.SMTPException) as e:
        failure = _scrub(f"cannot connect to {settings.describe()}: {type(e).__name__}: {e} (is this your "
                         "server? set SPSBOT_SMTP_URL, e.g. smtp+starttls://mail.example.org:587)", settings)
    if failure is not None:
        # Raised outside the except block: "from None" only hides the SMTP exception, which may
        # quote the password, while __context__ would still carry it to error reporters.
        raise SendError(failure)
    return conn


def check_server(config) -> str:
    """Go as far as sending without sending: connect, TLS, AUTH, then RSET and QUIT.

    Returns what was checked (one line); SendError says what failed, as a real send would.
    """
    settings = SmtpSettings.from_config(config)
    conn = connect(settings)
    try:
        conn.rset()
    except (smtplib.SMTPException, OSError) as e:
        raise SendError(_scrub(f"{settings.describe()} dropped the connection after the login: "
                               f"{type(e).__name__}: {e}", settings)) from None
    finally:
        _close(conn, send_quit=True)
    steps = ["connected", "TLS" if settings.scheme != "smtp" else "", "logged in" if settings.username else ""]
    return f"SMTP {settings.describe()}: " + ", ".join(s for s in steps if s)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _scrub(message: str, settings: SmtpSettings) -> str:
    """The password in every encoding a server may echo (plain, AUTH PLAIN/LOGIN base64…)."""
    return scrub(message, [settings.password, *known_secrets()])


@dataclass
class SendResult:
    sent: int = 0
    failed: int = 0        # permanent (5xx) per-recipient failures
    deferred: int = 0      # temporary failures and what a dead connection left: retried next run
    failures: list[str] = field(default_factory=list)   # "address: why" for each permanent failure
    # Seconds between the server's 250 and the commit marking the delivery sent, per message: the
    # window in which a crash re-sends a message (docs/reliability.md, bench/send_window.py).
    commit_windows: list[float] = field(default_factory=list)
    bouncing: list[str] = field(default_factory=list)   # subscribers marked bouncing now
    dry_run: list[dict] = field(default_factory=list)   # what would be sent (--dry-run)


def message_for(delivery: dict, config) -> bytes:
    """The message bytes for a pending delivery, rebuilt from the stored digest (same every retry)."""
    data = loads(delivery.get("data"), {}) or {}
    sender = (config.email or {}).get("from") or "spsbot <spsbot@localhost>"
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return build_message(subject=delivery["subject"], html=delivery["html"], text=delivery["text"], sender=sender,
                         to_email=delivery["email"], to_name=delivery.get("name"), message_id=delivery["message_id"],
                         unsubscribe=data.get("unsubscribe"), date=delivery.get("built_at"),
                         list_id=f"{data.get('slug', 'spsbot')} digest <{data.get('slug', 'digest')}.spsbot.{domain}>")


def send_pending(db: sqlite_utils.Database, config, *, email: str | None = None, dry_run: bool = False,
                 progress: bool = False, connect_fn=connect) -> SendResult:
    """Send every pending delivery (or only those to ``email``); see the module docstring."""
    result = SendResult()
    pending = store.pending_deliveries(db, email)
    if dry_run:
        result.dry_run = [{"to": d["email"], "subject": d["subject"], "message_id": d["message_id"],
                           "bytes": len(message_for(d, config))} for d in pending]
        return result
    if not pending:
        return result
    problem = integrity_problem(db)
    if problem:
        raise SendError(f"not sending: the database fails PRAGMA quick_check ({problem}); "
                        "restore it from a backup (or repair it with sqlite3 .recover) first")
    settings = SmtpSettings.from_config(config)
    sender = parseaddr((config.email or {}).get("from") or "")[1] or "spsbot@localhost"
    conn = connect_fn(settings)
    reconnects_left = 1
    from tqdm import tqdm
    try:
        for index, delivery in enumerate(tqdm(pending, desc="sending", unit="msg", disable=not progress)):
            if delivery["subscriber_status"] != "active":
                store.mark_failed(db, delivery, f"subscriber is {delivery['subscriber_status']}", hard_bounce=False)
                continue
            message = message_for(delivery, config)
            crash_point("send:before_smtp")
            try:
                _send_one(conn, message, sender, delivery["email"])
            except (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError, OSError) as e:
                if reconnects_left <= 0:
                    store.mark_deferred(db, delivery, f"connection lost: {type(e).__name__}")
                    result.deferred += len(pending) - index
                    log.warning("send: connection lost again; %d left pending for the next run", len(pending) - index)
                    break
                reconnects_left -= 1
                log.warning("send: connection lost (%s); reconnecting once", type(e).__name__)
                _close(conn)
                conn = connect_fn(settings)
                try:
                    _send_one(conn, message, sender, delivery["email"])
                except (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError, OSError) as e2:
                    store.mark_deferred(db, delivery, f"connection lost: {type(e2).__name__}")
                    result.deferred += len(pending) - index
                    break
                except _Refused as refusal:
                    _record_refusal(db, delivery, refusal, result)
                    continue
            except _Refused as refusal:
                _record_refusal(db, delivery, refusal, result)
                continue
            accepted = time.monotonic()
            crash_point("send:after_smtp")  # the window a crash-safety test aims at
            _record_sent(db, delivery)
            result.commit_windows.append(time.monotonic() - accepted)
            result.sent += 1
    finally:
        _close(conn, send_quit=True)
    log.info("send: %d sent, %d failed, %d deferred%s", result.sent, result.failed, result.deferred,
             f", now bouncing: {', '.join(result.bouncing)}" if result.bouncing else "")
    return result


def _record_sent(db, delivery: dict) -> None:
    """Mark an accepted message sent; if that write fails, stop the batch with one line (every
    further message would be sent and not recorded, so re-sent next run too)."""
    failure = None
    try:
        store.mark_sent(db, delivery)
    except StoreError as e:
        failure = (f"the SMTP server accepted the digest to {delivery['email']} (Message-ID "
                   f"{delivery['message_id']}) but recording that failed ({type(e).__name__}: {e}); "
                   "it stays pending and is re-sent next run with the same Message-ID; sending stopped")
    if failure:
        raise SendError(failure)


class _Refused(Exception):
    """An SMTP refusal; ``stage`` is where: "rcpt" (the address), "data" (the message) or
    "sender" (our MAIL FROM: a configuration problem, the same for every message)."""

    def __init__(self, code: int, text: str, stage: str = "rcpt"):
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text
        self.stage = stage


def _send_one(conn: smtplib.SMTP, message: bytes, sender: str, recipient: str) -> None:
    """Send to one recipient; SMTP refusals become _Refused(code), connection loss propagates."""
    try:
        refused = conn.sendmail(sender, [recipient], message)
    except smtplib.SMTPRecipientsRefused as e:
        code, text = next(iter(e.recipients.values()), (550, b"refused"))
        raise _Refused(code, _text(text)) from None
    except smtplib.SMTPSenderRefused as e:
        raise _Refused(e.smtp_code, _text(e.smtp_error), "sender") from None
    except smtplib.SMTPDataError as e:
        raise _Refused(e.smtp_code, _text(e.smtp_error), "data") from None
    except smtplib.SMTPResponseException as e:
        if e.smtp_code in (421,):  # "service closing": treat as a dropped connection
            raise smtplib.SMTPServerDisconnected(_text(e.smtp_error)) from None
        raise _Refused(e.smtp_code, _text(e.smtp_error), "data") from None
    if refused:
        code, text = next(iter(refused.values()))
        raise _Refused(code, _text(text))


def _record_refusal(db, delivery: dict, refusal: _Refused, result: SendResult) -> None:
    if 400 <= refusal.code < 500:
        store.mark_deferred(db, delivery, str(refusal))
        result.deferred += 1
        log.warning("send: %s deferred (%s)", delivery["email"], refusal)
        return
    if refusal.stage == "sender":  # our From is refused: every message would be; stop, keep pending
        store.mark_deferred(db, delivery, str(refusal))
        raise SendError(f"the SMTP server refused the sender address: {refusal}")
    # only a refused recipient is the subscriber's bounce; a refused message (e.g. 554 content)
    # fails this delivery without counting against the address
    bouncing = store.mark_failed(db, delivery, str(refusal), hard_bounce=refusal.stage == "rcpt",
                                 bounce_limit=BOUNCE_LIMIT)
    result.failed += 1
    result.failures.append(f"{delivery['email']}: {shorten(_text(refusal), 200)}")
    if bouncing:
        result.bouncing.append(delivery["email"])
    log.warning("send: %s refused (%s)", delivery["email"], refusal)


def _close(conn, send_quit: bool = False) -> None:
    """Close the SMTP connection, saying QUIT first when ``send_quit``; a failing QUIT still closes."""
    try:
        if send_quit:
            conn.quit()
        else:
            conn.close()
    except (smtplib.SMTPException, OSError):
        with suppress(OSError):
            conn.close()
