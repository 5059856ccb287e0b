"""Signed tokens for the links in e-mails (HMAC-SHA256): unsubscribe, preferences, feedback, confirm.

A subscriber token is ``<subscriber id>.<issued day>.<signature>``; the signature covers the
token's purpose, the id, the subscriber's address and the day it was issued, so it cannot be moved
to another subscriber or used for another purpose (an unsubscribe token from a List-Unsubscribe
header cannot change preferences), survives no address change, and expires after ``TOKEN_DAYS``.
A feedback token adds the item (``<id>.<day>.<item, base64url>.<signature>``). A sign-up
confirmation token names the sign-up and the second it was issued, and expires after
``CONFIRM_HOURS``. The secret is env ``SPSBOT_SECRET`` (at least 32 bytes, not a published
placeholder) or the key file beside the database (``bot.store.keyfile``), never in the database
itself: whoever can read the key can forge a token for every subscriber, and the database is
meant to be browsed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import sqlite_utils

from bot.dates import parse_timestamp
from bot.store import now_iso
from bot.store import subscribers as subscriber_store
from bot.store.keyfile import signing_secret
from bot.errors import UserError

TOKEN_DAYS = 400  # a year of weekly e-mails plus slack: an old digest's link still works
CONFIRM_HOURS = 48  # a sign-up link is good for two days; then the person signs up again
# What each purpose is called in an error message (the unsubscribe wording predates the others).
_NOUNS = {"unsubscribe": "unsubscribe token", "preferences": "preferences link", "feedback": "feedback link",
          "confirm": "confirmation link"}


class TokenError(UserError, ValueError):
    """A forged, malformed or expired token; str() is one line for the user."""


def secret_for(db: sqlite_utils.Database) -> bytes:
    """The secret links are signed and checked with (SecretError / KeyFileError when unusable)."""
    return signing_secret(db).encode("utf-8")


def _seconds(now: str | None = None) -> int:
    return int(parse_timestamp(now or now_iso()).timestamp())


def _day(now: str | None = None) -> int:
    return _seconds(now) // 86400


def _sign(secret: bytes, *fields) -> str:
    message = ":".join(str(f) for f in fields).encode("utf-8")
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _signature(secret: bytes, subscriber_id: int, email: str, day: int, purpose: str = "unsubscribe") -> str:
    # "unsubscribe:<id>:<address>:<day>" is the message links in e-mails already sent were signed with
    return _sign(secret, purpose, subscriber_id, email.lower(), day)


def _matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace"))


def _number(text: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts "²" and "①", which int() then refuses
    return text.isascii() and text.isdigit()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _unb64(text: str) -> str:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise TokenError("malformed feedback link") from None


def make_token(secret: bytes, subscriber_id: int, email: str, now: str | None = None,
               purpose: str = "unsubscribe") -> str:
    """A subscriber token for ``purpose`` (unsubscribe, preferences)."""
    day = _day(now)
    return f"{subscriber_id}.{day}.{_signature(secret, subscriber_id, email, day, purpose)}"


def _check_day(day: int, now: str | None, noun: str) -> None:
    today = _day(now)
    if day > today + 1 or today - day > TOKEN_DAYS:
        raise TokenError(f"expired {noun}")


def verify_token(db: sqlite_utils.Database, token: str, now: str | None = None,
                 purpose: str = "unsubscribe") -> dict:
    """Return the subscriber the token names, or raise TokenError (forged, expired, unknown)."""
    noun = _NOUNS[purpose]
    parts = (token or "").strip().split(".") if isinstance(token, str) else []
    if len(parts) != 3 or not _number(parts[0]) or not _number(parts[1]) or len(parts[0]) > 18:
        raise TokenError(f"malformed {noun}")
    subscriber_id, day = int(parts[0]), int(parts[1])
    subscriber = subscriber_store.get_subscriber(db, subscriber_id)
    expected = _signature(secret_for(db), subscriber_id, subscriber["email"], day, purpose) if subscriber else ""
    # compare_digest even when the subscriber is unknown: no timing hint about which ids exist
    if not _matches(expected, parts[2]) or not subscriber:
        raise TokenError(f"invalid {noun} (bad signature)")
    _check_day(day, now, noun)
    return subscriber


def make_feedback_token(secret: bytes, subscriber_id: int, email: str, item_id: str, now: str | None = None) -> str:
    """The token behind an item's "relevant / not relevant" links in one subscriber's digest."""
    day = _day(now)
    signature = _sign(secret, "feedback", subscriber_id, email.lower(), item_id, day)
    return f"{subscriber_id}.{day}.{_b64(item_id)}.{signature}"


def verify_feedback_token(db: sqlite_utils.Database, token: str, now: str | None = None) -> tuple[dict, str]:
    """(subscriber, item id) the feedback token names, or TokenError."""
    parts = (token or "").strip().split(".") if isinstance(token, str) else []
    if len(parts) != 4 or not _number(parts[0]) or not _number(parts[1]) or len(parts[0]) > 18:
        raise TokenError("malformed feedback link")
    subscriber_id, day, item_id = int(parts[0]), int(parts[1]), _unb64(parts[2])
    subscriber = subscriber_store.get_subscriber(db, subscriber_id)
    expected = (_sign(secret_for(db), "feedback", subscriber_id, subscriber["email"].lower(), item_id, day)
                if subscriber else "")
    if not _matches(expected, parts[3]) or not subscriber:
        raise TokenError("invalid feedback link (bad signature)")
    _check_day(day, now, "feedback link")
    return subscriber, item_id


def make_confirm_token(secret: bytes, signup_id: int, email: str, now: str | None = None) -> str:
    """The token in a sign-up's confirmation e-mail (valid ``CONFIRM_HOURS``)."""
    issued = _seconds(now)
    return f"{signup_id}.{issued}.{_sign(secret, 'confirm', signup_id, email.lower(), issued)}"


def verify_confirm_token(db: sqlite_utils.Database, token: str, now: str | None = None) -> dict:
    """The sign-up the confirmation token names, or TokenError (forged, expired, unknown)."""
    parts = (token or "").strip().split(".") if isinstance(token, str) else []
    if len(parts) != 3 or not _number(parts[0]) or not _number(parts[1]) or len(parts[0]) > 18:
        raise TokenError("malformed confirmation link")
    signup_id, issued = int(parts[0]), int(parts[1])
    signup = subscriber_store.get_signup(db, signup_id)
    expected = _sign(secret_for(db), "confirm", signup_id, signup["email"].lower(), issued) if signup else ""
    if not _matches(expected, parts[2]) or not signup:
        raise TokenError("invalid confirmation link (bad signature)")
    age = _seconds(now) - issued
    if age > CONFIRM_HOURS * 3600 or age < -3600:
        raise TokenError("expired confirmation link: please sign up again")
    return signup


def apply_unsubscribe(db: sqlite_utils.Database, token: str, now: str | None = None) -> dict:
    """Unsubscribe the token's subscriber (idempotent); pending e-mails to them are cancelled."""
    subscriber = verify_token(db, token, now)
    subscriber_store.unsubscribe(db, subscriber["id"])
    subscriber["status"] = "unsubscribed"
    return subscriber
