"""Signed one-click unsubscribe tokens (HMAC-SHA256).

A token is ``<subscriber id>.<issued day>.<signature>``; the signature covers the id, the
subscriber's address and the day it was issued, so it cannot be moved to another subscriber,
survives no address change, and expires after ``TOKEN_DAYS``. The secret comes from env
``SPSBOT_SECRET``; without it a random secret is generated once and kept in a 0600 file beside
the database (``bot.store.keyfile``), never in the database itself: whoever can read the key can
forge a token for every subscriber, and the database is meant to be browsed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import datetime, timezone

import sqlite_utils

from bot.store import now_iso
from bot.store.digests import get_subscriber
from bot.store.keyfile import signing_key

TOKEN_DAYS = 400  # a year of weekly e-mails plus slack: an old digest's link still works


class TokenError(ValueError):
    """A forged, malformed or expired unsubscribe token."""


def secret_for(db: sqlite_utils.Database) -> bytes:
    env = os.environ.get("SPSBOT_SECRET")
    return (env or signing_key(db)).encode("utf-8")


def _day(now: str | None = None) -> int:
    moment = datetime.fromisoformat((now or now_iso()).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() // 86400)


def _signature(secret: bytes, subscriber_id: int, email: str, day: int) -> str:
    message = f"unsubscribe:{subscriber_id}:{email.lower()}:{day}".encode("utf-8")
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def make_token(secret: bytes, subscriber_id: int, email: str, now: str | None = None) -> str:
    day = _day(now)
    return f"{subscriber_id}.{day}.{_signature(secret, subscriber_id, email, day)}"


def verify_token(db: sqlite_utils.Database, token: str, now: str | None = None) -> dict:
    """Return the subscriber the token names, or raise TokenError (forged, expired, unknown)."""
    parts = (token or "").strip().split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise TokenError("malformed unsubscribe token")
    subscriber_id, day = int(parts[0]), int(parts[1])
    subscriber = get_subscriber(db, subscriber_id)
    expected = _signature(secret_for(db), subscriber_id, subscriber["email"], day) if subscriber else ""
    # compare_digest even when the subscriber is unknown: no timing hint about which ids exist
    if not hmac.compare_digest(expected.encode("ascii"), parts[2].encode("ascii", "replace")) or not subscriber:
        raise TokenError("invalid unsubscribe token (bad signature)")
    today = _day(now)
    if day > today + 1 or today - day > TOKEN_DAYS:
        raise TokenError("expired unsubscribe token")
    return subscriber


def apply_unsubscribe(db: sqlite_utils.Database, token: str, now: str | None = None) -> dict:
    """Unsubscribe the token's subscriber (idempotent); pending e-mails to them are cancelled."""
    subscriber = verify_token(db, token, now)
    stamp = now_iso()
    with db.atomic():
        db.execute("update subscribers set status = 'unsubscribed', updated_at = ? where id = ?",
                   [stamp, subscriber["id"]])
        db.execute("update deliveries set status = 'failed', last_error = 'unsubscribed' "
                   "where subscriber_id = ? and status = 'pending'", [subscriber["id"]])
    subscriber["status"] = "unsubscribed"
    return subscriber
