"""Sign-up e-mails for the web front's double opt-in: rendered here, sent from an outbox.

``POST /subscribe`` stores a ``signups`` row with its e-mail *pending*; ``send_signup_mails``
sends every pending one over the same SMTP chokepoint as the digests (``bot.digest.send``) and
marks it sent, failed (a 5xx: the address does not exist) or leaves it pending for a retry (a 4xx,
a dropped connection, SMTP down). The web request never waits for SMTP, and a slow or dead relay
costs the sign-up nothing but a delay.

Two kinds: ``confirm`` carries the signed link that makes the address a subscriber;
``manage`` goes to an address that is already subscribed (someone signed it up again) and
carries its preferences link instead, so the page a visitor sees never tells which it was.
"""

from __future__ import annotations

import hashlib
import logging
from email.utils import parseaddr
from urllib.parse import quote

import sqlite_utils

from bot.digest.entries import clean_text
from bot.digest.render import build_message, environment
# the digests' own SMTP chokepoint: the same connection handling, refusal codes and secrecy
from bot.digest.send import SendError, SmtpSettings, _close, _Refused, _send_one, connect
from bot.digest.tokens import CONFIRM_HOURS, make_confirm_token, make_token, secret_for
from bot.store import subscribers as store
from bot.clock import iso_before

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # a sign-up e-mail refused this many times (4xx) is given up
KEEP_SIGNUPS_DAYS = 7  # sign-up requests (with their addresses) are forgotten after this


def queue_signup(db: sqlite_utils.Database, config, email: str, name: str | None, themes: str | None,
                 style: str | None = None) -> str:
    """Record a sign-up request for a validated address and queue its e-mail, within the limits.

    Returns what happened, for the log and the tests only — the visitor always sees the same page:
    "confirm" (a confirmation e-mail queued), "manage" (already subscribed: their preferences link
    queued), "limited" (this address had ``signups_per_address_day`` requests in 24 hours) or
    "capped" (``signup_mails_per_hour`` e-mails went out in the last hour, to anyone).
    """
    web = config.web or {}
    forget_old_signups(db)
    existing = store.find_subscriber(db, email)
    kind = "manage" if existing and existing["status"] == "active" else "confirm"
    if store.signups_for_mailbox_since(db, email, iso_before(86400)) >= int(web.get("signups_per_address_day") or 3):
        outcome = "limited"
    elif store.signup_mails_since(db, iso_before(3600)) >= int(web.get("signup_mails_per_hour") or 200):
        outcome = "capped"
        log.warning("sign-up: %d e-mails in the last hour, the cap; this request gets none",
                    int(web.get("signup_mails_per_hour") or 200))
    else:
        outcome = kind
    store.record_signup(db, email, name=name, themes=themes, kind=kind, style=style,
                        mail_status="pending" if outcome == kind else "skipped")
    return outcome


def forget_old_signups(db: sqlite_utils.Database) -> int:
    """Delete sign-up requests older than ``KEEP_SIGNUPS_DAYS`` (run on every sign-up and every
    pass of the web front's mailer, so they go on time even when nobody else signs up)."""
    return store.purge_signups(db, iso_before(KEEP_SIGNUPS_DAYS * 86400))


def web_link(base_url: str, path: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{path}?token={quote(token, safe='')}"


def signup_message(db: sqlite_utils.Database, config, signup: dict, base_url: str) -> bytes:
    """The e-mail for one sign-up row (a confirmation link, or the preferences link of an address
    that is already subscribed)."""
    secret = secret_for(db)
    subscriber = store.find_subscriber(db, signup["email"]) if signup["kind"] == "manage" else None
    if subscriber is not None:
        link = web_link(base_url, "/preferences", make_token(secret, subscriber["id"], subscriber["email"],
                                                             purpose="preferences"))
        subject = f"Your {clean_text(config.topic.slug).upper()} digest subscription"
    else:
        link = web_link(base_url, "/confirm", make_confirm_token(secret, signup["id"], signup["email"]))
        subject = f"Confirm your subscription to the {clean_text(config.topic.slug).upper()} digest"
    # Nothing the visitor typed goes into the e-mail (no name in the greeting or the To: header):
    # the form accepts any address, so whatever it carried would be mailed, under the digest's
    # name, to someone who never asked for it.
    context = {"topic": clean_text(config.topic.name), "slug": clean_text(config.topic.slug).upper(),
               "link": link, "manage": subscriber is not None, "hours": CONFIRM_HOURS,
               "home": base_url.rstrip("/") + "/"}
    env = environment()
    sender = (config.email or {}).get("from") or "spsbot <spsbot@localhost>"
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    # the same Message-ID on every retry of this sign-up's e-mail
    stamp = hashlib.sha256(f"{signup['id']}:{signup['created_at']}".encode()).hexdigest()[:16]
    return build_message(subject=subject, html=env.get_template("signup.html").render(context),
                         text=env.get_template("signup.txt").render(context), sender=sender,
                         to_email=signup["email"], to_name=None,
                         message_id=f"<signup.{signup['id']}.{stamp}@{domain}>", unsubscribe=None)


def send_signup_mails(db: sqlite_utils.Database, config, base_url: str, *, connect_fn=connect) -> dict:
    """Send every pending sign-up e-mail; returns {"sent", "failed", "deferred"}."""
    counts = {"sent": 0, "failed": 0, "deferred": 0}
    forget_old_signups(db)
    pending = store.pending_signup_mails(db, MAX_ATTEMPTS)
    if not pending:
        return counts
    try:
        conn = connect_fn(SmtpSettings.from_config(config))
    except SendError as e:
        log.warning("sign-up e-mails: %s; %d left pending", e, len(pending))
        counts["deferred"] = len(pending)
        return counts
    sender = parseaddr((config.email or {}).get("from") or "")[1] or "spsbot@localhost"
    try:
        for index, signup in enumerate(pending):
            try:
                _send_one(conn, signup_message(db, config, signup, base_url), sender, signup["email"])
            except _Refused as refusal:
                temporary = 400 <= refusal.code < 500
                store.mark_signup_mail(db, signup["id"], "pending" if temporary else "failed", str(refusal))
                counts["deferred" if temporary else "failed"] += 1
                log.warning("sign-up e-mail %d refused: %s", signup["id"], refusal)  # the id, not the address
                continue
            except OSError as e:  # the connection dropped: the rest waits for the next pass
                log.warning("sign-up e-mails: connection lost (%s); %d left pending", type(e).__name__,
                            len(pending) - index)
                counts["deferred"] += len(pending) - index
                break
            store.mark_signup_mail(db, signup["id"], "sent")
            counts["sent"] += 1
    finally:
        _close(conn, send_quit=True)
    log.info("sign-up e-mails: %d sent, %d failed, %d deferred", counts["sent"], counts["failed"], counts["deferred"])
    return counts

