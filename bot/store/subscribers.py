"""Subscribers and the subscriber side of the web front: sign-ups (double opt-in), preferences, votes.

The ``subscribers`` table is created by ``m004_digest``, the web tables by ``m009_web`` (both in
``bot.store.schema``). The digest stage (``bot.digest.subscribers`` holds the rules: address
checks, CSV import), the web app (``bot.web``) and the CLI call these functions; they hold all of
the subscriber SQL. Every change of several rows is one transaction.
"""

from __future__ import annotations

from contextlib import contextmanager

import sqlite_utils

from bot.store import now_iso

VOTES = ("relevant", "irrelevant")
# Providers whose mailboxes ignore dots in the local part, and their other domain names for the
# same mailbox (Gmail: j.o.e@googlemail.com is joe@gmail.com).
_DOTS_IGNORED = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


@contextmanager
def _writing(db: sqlite_utils.Database):
    """A transaction that takes the write lock first (BEGIN IMMEDIATE). ``db.atomic()``'s plain
    BEGIN reads first and asks for the lock later; in WAL mode that upgrade fails at once with
    "database is locked" (no busy wait) when another connection wrote meanwhile, which 40
    concurrent sign-ups on the web front's threads did. Waiting for the lock up front obeys
    ``busy_timeout`` instead."""
    if db.conn.in_transaction:
        with db.atomic():
            yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


# --- sign-ups ------------------------------------------------------------------------------

def mailbox_key(email: str) -> str:
    """The mailbox an address delivers to, as far as it can be told from the address: lower
    case, the ``+tag`` dropped, and the provider's dot rule where it has one (Gmail). The
    per-address limit counts this, so ``Joe+1@…``, ``j.oe@…`` and ``JOE@…`` are one mailbox."""
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in _DOTS_IGNORED:
        domain = _DOTS_IGNORED[domain]
        local = local.replace(".", "")
    return f"{local}@{domain}"


def record_signup(db: sqlite_utils.Database, email: str, *, name: str | None, themes: str | None, kind: str,
                  mail_status: str, style: str | None = None) -> int:
    """Store one sign-up request; ``mail_status`` "pending" queues its e-mail, "skipped" does not."""
    with _writing(db):
        return db["signups"].insert({"email": email, "mailbox": mailbox_key(email), "name": name, "themes": themes,
                                     "kind": kind, "style": style, "created_at": now_iso(), "mail_status": mail_status,
                                     "mail_attempts": 0}).last_pk


def signups_for_mailbox_since(db: sqlite_utils.Database, email: str, since: str) -> int:
    """How many sign-up requests named this address's mailbox (``mailbox_key``) since ``since``
    (the per-address limit)."""
    return db.execute("select count(*) from signups where mailbox = ? and created_at >= ?",
                      [mailbox_key(email), since]).fetchone()[0]


def signup_mails_since(db: sqlite_utils.Database, since: str) -> int:
    """Sign-up e-mails queued or sent since ``since``, any address (the global hourly cap)."""
    return db.execute("select count(*) from signups where created_at >= ? and mail_status != 'skipped'",
                      [since]).fetchone()[0]


def get_signup(db: sqlite_utils.Database, signup_id: int) -> dict | None:
    rows = list(db.query("select * from signups where id = ?", [signup_id]))
    return rows[0] if rows else None


def pending_signup_mails(db: sqlite_utils.Database, max_attempts: int, limit: int = 50) -> list[dict]:
    """Sign-up e-mails still to send (oldest first), skipping those that failed too often."""
    return list(db.query("select * from signups where mail_status = 'pending' and mail_attempts < ? "
                            "order by id limit ?", [max_attempts, limit]))


def mark_signup_mail(db: sqlite_utils.Database, signup_id: int, status: str, error: str | None = None) -> None:
    """``status``: sent, failed (permanent) or pending (a temporary failure: retried)."""
    with db.atomic():
        db.execute("update signups set mail_status = ?, mail_attempts = mail_attempts + 1, mail_error = ?, "
                   "mail_sent_at = case when ? = 'sent' then ? else mail_sent_at end where id = ?",
                   [status, (error or None) and error[:300], status, now_iso(), signup_id])


def purge_signups(db: sqlite_utils.Database, before: str) -> int:
    """Forget sign-up requests made before ``before``: their links have expired, and an address
    that never confirmed should not stay on file."""
    with db.atomic():
        return db.execute("delete from signups where created_at < ?", [before]).rowcount


def spent_signup(db: sqlite_utils.Database, signup: dict) -> bool:
    """Whether the sign-up was confirmed and its address has left the list since: its link is used
    up. Clicking it again must not undo an unsubscribe (a mail scanner, an old e-mail); signing
    up again sends a fresh link."""
    return _spent(signup, find_subscriber(db, signup["email"]) if signup.get("confirmed_at") else None)


def _spent(signup: dict, subscriber: dict | None) -> bool:
    return bool(signup.get("confirmed_at") and subscriber and subscriber["status"] != "active")


def confirm_signup(db: sqlite_utils.Database, signup: dict, *, name: str | None = None) -> tuple[dict, bool]:
    """Make the sign-up's address an active subscriber (idempotent). Returns (subscriber, changed).

    A new address is added with the sign-up's choices and ``name`` (what the confirming person
    sent, not the sign-up's: anyone can sign up any address); an unsubscribed or bouncing one is
    re-activated with the sign-up's themes but keeps its name (a name changes only on the
    subscriber's own preferences page), unless this sign-up's link was already used
    (``spent_signup``); an active subscriber is left as they are.
    """
    now = now_iso()
    with _writing(db):
        existing = find_subscriber(db, signup["email"])
        changed = True
        if _spent(signup, existing):
            return existing, False
        if not existing:
            db.execute("insert into subscribers (email, name, themes, style, frequency, max_items, send_empty, "
                       "status, bounces, created_at, updated_at, confirmed_at) values (?, ?, ?, ?, 'weekly', 20, 0, "
                       "'active', 0, ?, ?, ?)",
                       [signup["email"], name, signup["themes"], signup.get("style"), now, now, now])
        elif existing["status"] != "active":
            db.execute("update subscribers set status = 'active', bounces = 0, themes = ?, style = ?, "
                       "updated_at = ?, confirmed_at = ? where id = ?",
                       [signup["themes"], signup.get("style"), now, now, existing["id"]])
        else:
            changed = False
        db.execute("update signups set confirmed_at = coalesce(confirmed_at, ?) where id = ?", [now, signup["id"]])
        subscriber = find_subscriber(db, signup["email"])
    return subscriber, changed


# --- subscribers ---------------------------------------------------------------------------

def get_subscriber(db: sqlite_utils.Database, subscriber_id: int) -> dict | None:
    rows = list(db["subscribers"].rows_where("id = ?", [subscriber_id], limit=1))
    return rows[0] if rows else None


def find_subscriber(db: sqlite_utils.Database, email: str) -> dict | None:
    """The subscriber with this address (compared case-insensitively), or None."""
    rows = list(db["subscribers"].rows_where("lower(email) = lower(?)", [email], limit=1))
    return rows[0] if rows else None


def active_subscribers(db: sqlite_utils.Database) -> list[dict]:
    return list(db["subscribers"].rows_where("status = 'active'", order_by="id"))


def subscribers_by_address(db: sqlite_utils.Database, status: str | None = None) -> list[dict]:
    """Every subscriber (or those with ``status``), ordered by address; ``themes`` as stored (JSON)."""
    where, args = ("status = ?", [status]) if status else (None, None)
    return list(db["subscribers"].rows_where(where, args, order_by="email"))


def subscriber_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """status ("unknown" for none) -> how many subscribers have it, in status order."""
    return dict(db.execute("SELECT coalesce(status, 'unknown'), count(*) FROM subscribers "
                           "GROUP BY 1 ORDER BY 1").fetchall())


def insert_subscriber(db: sqlite_utils.Database, row: dict) -> dict:
    """Store a new subscriber (``row`` holds every field but the timestamps); returns the stored row."""
    now = now_iso()
    with db.atomic():
        pk = db["subscribers"].insert({**row, "created_at": now, "updated_at": now}).last_pk
    return get_subscriber(db, pk)


def update_subscriber(db: sqlite_utils.Database, subscriber_id: int, changes: dict) -> dict:
    """Change the given fields of a subscriber (``updated_at`` stamped); returns the stored row."""
    with db.atomic():
        db["subscribers"].update(subscriber_id, {**changes, "updated_at": now_iso()})
    return get_subscriber(db, subscriber_id)


def purge_subscriber(db: sqlite_utils.Database, subscriber_id: int) -> None:
    """Delete the subscriber and every trace of them: digests, their items, deliveries, sent items."""
    with db.atomic():
        db.execute("delete from sent_items where subscriber_id = ?", [subscriber_id])
        db.execute("delete from deliveries where subscriber_id = ?", [subscriber_id])
        db.execute("delete from digest_items where digest_id in "
                   "(select id from digests where subscriber_id = ?)", [subscriber_id])
        db.execute("delete from digests where subscriber_id = ?", [subscriber_id])
        db.execute("delete from subscribers where id = ?", [subscriber_id])


def update_preferences(db: sqlite_utils.Database, subscriber_id: int, *, themes: str | None, frequency: str,
                       max_items: int, name: str | None, style: str | None = None) -> None:
    """Store validated preferences (``themes`` JSON or None = all; ``name`` None = none;
    ``style`` None = clinical)."""
    with db.atomic():
        db.execute("update subscribers set themes = ?, frequency = ?, max_items = ?, name = ?, style = ?, "
                   "updated_at = ? where id = ?", [themes, frequency, max_items, name, style, now_iso(), subscriber_id])


def unsubscribe(db: sqlite_utils.Database, subscriber_id: int) -> None:
    """Mark the subscriber unsubscribed and cancel their pending e-mails (idempotent)."""
    with db.atomic():
        db.execute("update subscribers set status = 'unsubscribed', updated_at = ? where id = ?",
                   [now_iso(), subscriber_id])
        db.execute("update deliveries set status = 'failed', last_error = 'unsubscribed' "
                   "where subscriber_id = ? and status = 'pending'", [subscriber_id])


def resubscribe(db: sqlite_utils.Database, subscriber_id: int) -> None:
    """Active again (from their own preferences link, which proves the address is theirs)."""
    with db.atomic():
        db.execute("update subscribers set status = 'active', bounces = 0, updated_at = ? where id = ?",
                   [now_iso(), subscriber_id])


# --- votes ---------------------------------------------------------------------------------

def save_vote(db: sqlite_utils.Database, subscriber_id: int, item_id: str, vote: str) -> None:
    """A subscriber's vote on an item; a later vote by the same subscriber replaces it."""
    if vote not in VOTES:
        raise ValueError(f"vote must be one of {', '.join(VOTES)}, got {vote!r}")
    now = now_iso()
    with db.atomic():
        db.execute("insert into votes (subscriber_id, item_id, vote, created_at, updated_at) values (?, ?, ?, ?, ?) "
                   "on conflict (subscriber_id, item_id) do update set vote = excluded.vote, "
                   "updated_at = excluded.updated_at", [subscriber_id, item_id, vote, now, now])


def get_vote(db: sqlite_utils.Database, subscriber_id: int, item_id: str) -> str | None:
    row = db.execute("select vote from votes where subscriber_id = ? and item_id = ?",
                     [subscriber_id, item_id]).fetchone()
    return row[0] if row else None


def curator_note(subscriber_id: int) -> str:
    """The ``feedback.note`` of a label a curator gave from a digest's link."""
    return f"web: curator {subscriber_id}"


def current_judgement(db: sqlite_utils.Database, subscriber: dict, item_id: str) -> str | None:
    """What this subscriber said about the item: their vote, or for a curator the label they gave
    (not one the maintainer or another curator set, which they never said)."""
    if subscriber.get("curator"):
        row = db.execute("select label from feedback where item_id = ? and theme is null and note = ? "
                         "order by id desc limit 1", [item_id, curator_note(subscriber["id"])]).fetchone()
        return row[0] if row else None
    return get_vote(db, subscriber["id"], item_id)


def vote_counts(db: sqlite_utils.Database) -> dict[str, tuple[int, int]]:
    """item id -> (relevant votes, irrelevant votes), over every subscriber who is not a curator
    (a curator's click is stored as a curator label instead). None in a store from before the
    votes table (migration 009)."""
    if "votes" not in db.table_names():
        return {}
    rows = db.execute("select v.item_id, sum(v.vote = 'relevant'), sum(v.vote = 'irrelevant') from votes v "
                      "join subscribers s on s.id = v.subscriber_id where coalesce(s.curator, 0) = 0 "
                      "group by v.item_id").fetchall()
    return {item_id: (int(up or 0), int(down or 0)) for item_id, up, down in rows}


def feedback_overview(db: sqlite_utils.Database, since: str | None = None) -> list[dict]:
    """Every item with a curator label or a subscriber vote: title, the curator labels
    (relevance and themes) and the vote counts, most recent feedback first."""
    sql = """
        with judged as (
            select item_id, max(created_at) as last_at from feedback group by item_id
            union all
            select item_id, max(updated_at) from votes group by item_id)
        select j.item_id, max(j.last_at) as last_at, i.title, i.kind
        from judged j left join items i on i.id = j.item_id
        group by j.item_id
    """
    rows = list(db.query(sql))
    if since:
        rows = [r for r in rows if (r["last_at"] or "") >= since]
    labels: dict[str, list[dict]] = {}
    for item_id, label, theme, created_at in db.execute(
            "select item_id, label, theme, created_at from feedback order by id"):
        labels.setdefault(item_id, []).append({"label": label, "theme": theme, "at": created_at})
    counts = vote_counts(db)
    for row in rows:
        row["curator"] = labels.get(row["item_id"], [])
        row["votes_relevant"], row["votes_irrelevant"] = counts.get(row["item_id"], (0, 0))
    rows.sort(key=lambda r: (r["last_at"] or "", r["item_id"]), reverse=True)
    return rows
