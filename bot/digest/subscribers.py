"""Subscribers: validated addresses, themes, frequency, caps, status; CSV import.

Every check happens before anything is written, so a bad address or a bad CSV row changes
nothing (unless the caller asks to skip bad rows).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address

import sqlite_utils

from bot.store import loads
from bot.store import subscribers as store
from bot.errors import UserError

FREQUENCIES = ("weekly", "daily", "monthly")
STYLES = ("clinical", "plain")  # the digest for clinicians (default), or in plain words for patients
STATUSES = ("active", "unsubscribed", "bouncing")
DEFAULT_MAX_ITEMS = 20
MAX_ITEMS_LIMIT = 200

# Dot-atom local part (RFC 5322 without quoted strings) and a hostname with a dot: strict on
# purpose, a digest to a quoted-string address is not worth the header-injection risk.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class SubscriberError(UserError, ValueError):
    """A user mistake about a subscriber (bad address, unknown theme, …); one line."""


@dataclass
class CsvReport:
    added: int = 0
    updated: int = 0
    errors: list[str] = None  # "line N: message"
    left_inactive: list[str] = None  # unsubscribed/bouncing addresses the import did not re-activate


def validate_email(value: str) -> str:
    """Return the normalised address (domain lower-cased) or raise SubscriberError.

    Refuses CR/LF and other control characters, spaces, display-name forms, missing or
    dot-less domains, and non-ASCII (SMTPUTF8 is not supported by the sender).
    """
    raw = value if isinstance(value, str) else ""
    if not raw or raw != raw.strip() or any(ord(c) < 33 or ord(c) == 127 for c in raw):
        raise SubscriberError(f"invalid e-mail address {raw!r}: empty, spaces or control characters")
    if not raw.isascii():
        raise SubscriberError(f"invalid e-mail address {raw!r}: non-ASCII addresses are not supported")
    try:
        parsed = Address(addr_spec=raw)  # the stdlib's RFC 5322 parser
    except (HeaderParseError, ValueError, IndexError) as e:
        raise SubscriberError(f"invalid e-mail address {raw!r}: {e}") from None
    local, domain = parsed.username, parsed.domain
    if parsed.addr_spec != raw or not local or not domain:
        raise SubscriberError(f"invalid e-mail address {raw!r}: expected name@domain.tld")
    if len(raw) > 254 or len(local) > 64 or not _LOCAL.match(local):
        raise SubscriberError(f"invalid e-mail address {raw!r}: bad local part")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise SubscriberError(f"invalid e-mail address {raw!r}: the domain must look like example.org")
    return f"{local}@{domain.lower()}"


def clean_name(name: str | None) -> str | None:
    """A display name without control characters (a CR/LF here would inject headers)."""
    if not name:
        return None
    text = "".join(c for c in name if c.isprintable()).strip()
    return text[:200] or None


def parse_themes(value, valid: list[str]) -> list[str] | None:
    """Themes from a list or a ';' / '|' / ',' separated string; None (or "all") = all themes."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    items = value if isinstance(value, (list, tuple)) else re.split(r"[;|,]", value)
    names = [str(v).strip() for v in items if str(v).strip()]
    if not names:
        return None
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise SubscriberError(f"unknown theme(s) {', '.join(unknown)}; valid themes: "
                              f"{', '.join(valid) or 'none (the profile has no [[themes]])'}")
    ordered = [n for n in valid if n in names]  # config order, no duplicates
    return None if ordered == list(valid) else ordered


def _check_frequency(frequency: str) -> str:
    frequency = frequency.strip().lower()
    if frequency not in FREQUENCIES:
        raise SubscriberError(f"unknown frequency {frequency!r}; choose one of {', '.join(FREQUENCIES)}")
    return frequency


def _check_max_items(max_items) -> int:
    try:
        max_items = int(max_items)
    except (TypeError, ValueError):
        raise SubscriberError(f"max items must be a whole number, got {max_items!r}") from None
    if not 1 <= max_items <= MAX_ITEMS_LIMIT:
        raise SubscriberError(f"max items must be between 1 and {MAX_ITEMS_LIMIT}, got {max_items}")
    return max_items


def check_style(style) -> str | None:
    """"plain" (for patients and carers), or None for the clinical digest (the default)."""
    style = (style or "clinical").strip().lower()
    if style not in STYLES:
        raise SubscriberError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    return None if style == "clinical" else style


def validate_preferences(themes, frequency, max_items, valid_themes: list[str], style=None) -> dict:
    """The checked ``themes`` (JSON or None = all), ``frequency``, ``max_items`` and ``style``, or
    SubscriberError."""
    chosen = parse_themes(themes, valid_themes)
    return {"themes": json.dumps(chosen) if chosen else None, "frequency": _check_frequency(frequency or "weekly"),
            "max_items": _check_max_items(DEFAULT_MAX_ITEMS if max_items in (None, "") else max_items),
            "style": check_style(style)}


# What a new subscriber gets for each field nobody gave.
DEFAULTS = {"name": None, "themes": None, "frequency": "weekly", "max_items": DEFAULT_MAX_ITEMS, "send_empty": 0}


def _validated_row(email, valid_themes, *, name=None, themes=None, frequency=None, max_items=None,
                   send_empty=None, style=None) -> dict:
    """The normalised address plus only the fields given (None = not given: an existing
    subscriber keeps what is stored, a new one gets ``DEFAULTS``)."""
    row: dict = {"email": validate_email(email)}
    if name is not None:
        row["name"] = clean_name(name)
    if themes is not None:
        chosen = parse_themes(themes, valid_themes)
        row["themes"] = json.dumps(chosen) if chosen else None
    if frequency not in (None, ""):
        row["frequency"] = _check_frequency(frequency)
    if max_items not in (None, ""):
        row["max_items"] = _check_max_items(max_items)
    if send_empty is not None:
        row["send_empty"] = 1 if send_empty else 0
    if style is not None:
        row["style"] = check_style(style)
    return row


def add_subscriber(db: sqlite_utils.Database, email: str, *, valid_themes: list[str], name: str | None = None,
                   themes=None, frequency: str | None = None, max_items: int | None = None,
                   send_empty: bool | None = None, curator: bool | None = None,
                   style: str | None = None) -> tuple[dict, bool]:
    """Add a subscriber, or update the fields given of an existing one and re-activate it (adding
    an address by hand is the maintainer saying "this person wants the digest"). Returns
    (row, created).

    ``curator`` True/False marks or unmarks a curator (their feedback links record curator
    labels); None leaves the flag as it is.
    """
    row = _validated_row(email, valid_themes, name=name, themes=themes, frequency=frequency,
                         max_items=max_items, send_empty=send_empty, style=style)
    if curator is not None:
        row["curator"] = 1 if curator else 0
    stored, outcome = _upsert(db, row, reactivate=True)
    return stored, outcome == "added"


def _upsert(db, row: dict, *, reactivate: bool) -> tuple[dict, str]:
    """Insert a new subscriber (defaults for what ``row`` lacks) or update the fields ``row`` has.

    An existing unsubscribed or bouncing subscriber is re-activated only with ``reactivate``.
    Returns (stored row, "added" | "updated" | "left_inactive").
    """
    with db.atomic():
        existing = store.find_subscriber(db, row["email"])
        if not existing:
            return store.insert_subscriber(db, {**DEFAULTS, **row, "status": "active", "bounces": 0}), "added"
        changes = {k: v for k, v in row.items() if k != "email"}
        outcome = "updated"
        if existing["status"] != "active":
            if reactivate:
                changes.update(status="active", bounces=0)
            else:
                outcome = "left_inactive"
        return store.update_subscriber(db, existing["id"], changes), outcome


def set_status(db: sqlite_utils.Database, email: str, status: str) -> dict:
    if status not in STATUSES:
        raise SubscriberError(f"unknown status {status!r}")
    existing = store.find_subscriber(db, email)
    if not existing:
        raise SubscriberError(f"no subscriber {email!r}")
    return store.update_subscriber(db, existing["id"], {"status": status})


def remove_subscriber(db: sqlite_utils.Database, email: str, *, purge: bool = False) -> dict:
    """Mark a subscriber unsubscribed (history kept), or with ``purge`` delete every trace."""
    existing = store.find_subscriber(db, email)
    if not existing:
        raise SubscriberError(f"no subscriber {email!r}")
    if not purge:
        return set_status(db, email, "unsubscribed")
    store.purge_subscriber(db, existing["id"])
    return existing


def list_subscribers(db: sqlite_utils.Database, status: str | None = None) -> list[dict]:
    """Every subscriber (or those with ``status``) by address, ``themes`` decoded (None = all)."""
    rows = store.subscribers_by_address(db, status)
    for row in rows:
        row["themes"] = loads(row["themes"])
    return rows


def _csv_cell(record: dict, key: str) -> str | None:
    """One CSV cell, stripped; None when the column is missing or the cell blank (not given)."""
    return (record.get(key) or "").strip() or None


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.lower() in ("1", "true", "yes", "y")


def import_csv(db: sqlite_utils.Database, text: str, *, valid_themes: list[str], skip_bad: bool = False,
               resubscribe: bool = False) -> CsvReport:
    """Import CSV text with header ``email[,name,themes,frequency,max_items,send_empty]``.

    Every row is validated first; any bad row aborts the whole import (nothing written) unless
    ``skip_bad``, which imports the good rows. Errors carry the CSV line number. A column the
    CSV lacks, or a blank cell, leaves that field of an existing subscriber as it is. An address
    that unsubscribed (or bounces) stays so unless ``resubscribe``: re-importing the same list
    every week must never undo an unsubscribe.
    """
    report = CsvReport(errors=[], left_inactive=[])
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "email" not in header:
        raise SubscriberError("CSV header must include 'email' (email,name,themes,frequency,max_items)")
    reader.fieldnames = header
    rows, seen = [], set()
    for record in reader:
        line = reader.line_num
        cells = {key: _csv_cell(record, key) for key in ("email", "name", "themes", "frequency", "max_items",
                                                        "send_empty")}
        try:
            row = _validated_row(cells["email"] or "", valid_themes, name=cells["name"], themes=cells["themes"],
                                 frequency=cells["frequency"], max_items=cells["max_items"],
                                 send_empty=_flag(cells["send_empty"]))
            if row["email"].lower() in seen:
                raise SubscriberError(f"duplicate address {row['email']}")
        except SubscriberError as e:
            report.errors.append(f"line {line}: {e}")
            continue
        seen.add(row["email"].lower())
        rows.append(row)
    if report.errors and not skip_bad:
        return report
    with db.atomic():
        for row in rows:
            stored, outcome = _upsert(db, row, reactivate=resubscribe)
            if outcome == "added":
                report.added += 1
            elif outcome == "updated":
                report.updated += 1
            else:
                report.left_inactive.append(stored["email"])
    return report
