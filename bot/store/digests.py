"""Database helpers for the digest stage: settings, digests, sent items, the outbox (subscribers
themselves: ``bot.store.subscribers``).

Tables are created by ``m004_digest`` in ``bot.store.schema``. Everything that changes several
rows at once runs in one transaction, so a crash never leaves a digest without its outbox row
(or an outbox row without the items it reserved).
"""

from __future__ import annotations

import json

import sqlite_utils

from bot.store import loads, now_iso

__all__ = [
    "get_setting", "set_setting", "last_digest", "sent_keys", "store_digest", "pending_deliveries",
    "mark_sent", "mark_failed", "mark_deferred", "public_digests", "first_digest",
    "fetch_runs_since",
]



# --- settings ------------------------------------------------------------------------------

def get_setting(db: sqlite_utils.Database, key: str) -> str | None:
    rows = list(db.execute("select value from settings where key = ?", [key]))
    return rows[0][0] if rows else None


def set_setting(db: sqlite_utils.Database, key: str, value: str) -> None:
    with db.atomic():
        db["settings"].upsert({"key": key, "value": value, "updated_at": now_iso()}, pk="key")


# --- what a digest may hold ----------------------------------------------------------------

_CANDIDATES_SQL = """
    select i.*, s.relevance, s.relevant, s.themes as theme_scores, s.labels, s.why, s.evidence,
           (s.item_id is null) as unscored
    from items i left join scores s on s.item_id = i.id
    where (s.relevant = 1 or (i.kind = 'trial' and s.item_id is null))
      and i.first_seen >= ?
"""


def digest_candidates(db: sqlite_utils.Database, since: str) -> list[dict]:
    """Items first stored at or after ``since`` that a digest may hold: those the ranker judged
    relevant, and trials not scored yet; each with its score columns (``themes`` as
    ``theme_scores``) and ``unscored``."""
    return list(db.query(_CANDIDATES_SQL, [since]))


def correction_notices(db: sqlite_utils.Database, since: str) -> list[dict]:
    """{"id", "extra"} of the items naming corrections (errata, retraction notices) stored or
    updated at or after ``since``: they are rarely scored relevant themselves."""
    return [{"id": r[0], "extra": r[1]} for r in db.execute(
        "select id, extra from items where extra like '%\"corrections\"%' and (first_seen >= ? or updated_at >= ?)",
        [since, since])]


def item_with_score(db: sqlite_utils.Database, item_id: str) -> dict | None:
    """One item with its score columns (labels, evidence, why, relevance, relevant), or None."""
    rows = list(db.query("select i.*, s.labels, s.evidence, s.why, s.relevance, s.relevant from items i "
                             "left join scores s on s.item_id = i.id where i.id = ?", [item_id]))
    return rows[0] if rows else None


def subscribers_with_pending_delivery(db: sqlite_utils.Database) -> set[int]:
    """Ids of the subscribers with a digest still in the outbox."""
    return {row[0] for row in db.execute("select distinct subscriber_id from deliveries where status = 'pending'")}


# --- digests -------------------------------------------------------------------------------

def last_digest(db: sqlite_utils.Database, subscriber_id: int | None) -> dict | None:
    """The subscriber's latest digest (``None`` = the public archive issue)."""
    where = "subscriber_id is null" if subscriber_id is None else "subscriber_id = ?"
    args = [] if subscriber_id is None else [subscriber_id]
    rows = list(db["digests"].rows_where(where, args, order_by="period_end desc, id desc", limit=1))
    return rows[0] if rows else None


def first_digest(db: sqlite_utils.Database, subscriber_id: int | None) -> dict | None:
    """The subscriber's earliest digest (``None`` = the public archive's first issue): where what
    they may be sent starts (see ``bot.digest.schedule.news_for``)."""
    where = "subscriber_id is null" if subscriber_id is None else "subscriber_id = ?"
    args = [] if subscriber_id is None else [subscriber_id]
    rows = list(db.execute(f"select period_start, period_end, created_at from digests where {where} "
                           f"order by id limit 1", args))
    return dict(zip(("period_start", "period_end", "created_at"), rows[0])) if rows else None


def fetch_runs_since(db: sqlite_utils.Database, since: str) -> list[dict]:
    """Fetch runs (one per source and run) started at or after ``since``, oldest first."""
    sql = ("select source, started, status from runs where command = 'fetch' and source is not null "
           "and started >= ? order by started, id")
    return [dict(zip(("source", "started", "status"), row)) for row in db.execute(sql, [since])]


def sent_keys(db: sqlite_utils.Database, subscriber_id: int | None) -> set[str]:
    """Keys (item ids, ``change:N``, ``notice:…``) already sent or reserved for this subscriber.

    For the public issue (``None``) it is what earlier public issues held.
    """
    if subscriber_id is None:
        sql = ("select di.item_id from digest_items di join digests d on d.id = di.digest_id "
               "where d.subscriber_id is null")
        return {row[0] for row in db.execute(sql)}
    return {row[0] for row in db.execute("select item_id from sent_items where subscriber_id = ?",
                                         [subscriber_id])}


def delivered_item_ids(db: sqlite_utils.Database, subscriber_id: int) -> set[str]:
    """Item ids actually delivered (sent_at set) to the subscriber: candidates for notices."""
    return {row[0] for row in db.execute(
        "select item_id from sent_items where subscriber_id = ? and sent_at is not null", [subscriber_id])}


def store_digest(db: sqlite_utils.Database, row: dict, entries: list[dict], message_id: str | None) -> int:
    """Store a digest, its items, the reservations in ``sent_items`` and a pending outbox row.

    One transaction: either the subscriber has a digest queued with every item reserved, or
    nothing changed. ``entries``: [{"key", "section", "theme", "position"}]. ``message_id`` None =
    no delivery (the public archive issue).
    """
    now = now_iso()
    with db.atomic():
        digest_id = db["digests"].insert({**row, "created_at": now}).last_pk
        # plain executemany: a thousand subscribers' digests are built in one run
        db.conn.executemany(
            "insert or ignore into digest_items (digest_id, item_id, section, theme, position) values (?, ?, ?, ?, ?)",
            [(digest_id, e["key"], e["section"], e.get("theme"), e["position"]) for e in entries])
        subscriber_id = row.get("subscriber_id")
        if subscriber_id is not None:
            db.conn.executemany(
                "insert or ignore into sent_items (subscriber_id, item_id, digest_id, sent_at) values (?, ?, ?, null)",
                [(subscriber_id, e["key"], digest_id) for e in entries])
            db["deliveries"].insert({"digest_id": digest_id, "subscriber_id": subscriber_id,
                                     "message_id": message_id, "status": "pending", "attempts": 0,
                                     "created_at": now})
    return digest_id


def public_digests(db: sqlite_utils.Database) -> list[dict]:
    """Public (subscriber-agnostic) issues, newest first, for the archive."""
    return list(db["digests"].rows_where("subscriber_id is null", order_by="period_end desc, id desc"))


# --- outbox --------------------------------------------------------------------------------

def pending_deliveries(db: sqlite_utils.Database, email: str | None = None) -> list[dict]:
    """Pending outbox rows with their digest and subscriber, oldest first."""
    sql = """
        select dl.id as delivery_id, dl.message_id, dl.attempts, dl.digest_id, dl.created_at as queued_at,
               s.id as subscriber_id, s.email, s.name, s.status as subscriber_status, s.bounces,
               d.subject, d.html, d.text, d.period_start, d.period_end, d.data, d.created_at as built_at
        from deliveries dl
        join digests d on d.id = dl.digest_id
        join subscribers s on s.id = dl.subscriber_id
        where dl.status = 'pending'
    """
    args: list = []
    if email:
        sql += " and lower(s.email) = lower(?)"
        args.append(email)
    sql += " order by dl.id"
    return list(db.query(sql, args))


def mark_sent(db: sqlite_utils.Database, delivery: dict) -> None:
    now = now_iso()
    with db.atomic():
        db.execute("update deliveries set status = 'sent', sent_at = ?, attempts = attempts + 1, last_error = null "
                   "where id = ?", [now, delivery["delivery_id"]])
        db.execute("update sent_items set sent_at = ? where digest_id = ? and subscriber_id = ?",
                   [now, delivery["digest_id"], delivery["subscriber_id"]])
        db.execute("update subscribers set bounces = 0 where id = ? and coalesce(bounces, 0) != 0",
                   [delivery["subscriber_id"]])


def mark_deferred(db: sqlite_utils.Database, delivery: dict, error: str) -> None:
    """A temporary failure (4xx, dropped connection): stays pending for the next run."""
    with db.atomic():
        db.execute("update deliveries set attempts = attempts + 1, last_error = ? where id = ?",
                   [error[:500], delivery["delivery_id"]])


def mark_failed(db: sqlite_utils.Database, delivery: dict, error: str, *, hard_bounce: bool,
                bounce_limit: int = 3) -> bool:
    """A permanent failure: the delivery is failed, its items are released (they were never
    received), a hard bounce is counted. Returns True when the subscriber is now ``bouncing``."""
    now = now_iso()
    with db.atomic():
        db.execute("update deliveries set status = ?, attempts = attempts + 1, last_error = ? where id = ?",
                   ["bounced" if hard_bounce else "failed", error[:500], delivery["delivery_id"]])
        db.execute("delete from sent_items where digest_id = ? and subscriber_id = ? and sent_at is null",
                   [delivery["digest_id"], delivery["subscriber_id"]])
        if not hard_bounce:
            return False
        db.execute("update subscribers set bounces = coalesce(bounces, 0) + 1, updated_at = ? where id = ?",
                   [now, delivery["subscriber_id"]])
        bounces = list(db.execute("select bounces from subscribers where id = ?", [delivery["subscriber_id"]]))[0][0]
        if bounces >= bounce_limit:
            db.execute("update subscribers set status = 'bouncing', updated_at = ? where id = ? and status = 'active'",
                       [now, delivery["subscriber_id"]])
            return True
    return False


def digest_data(row: dict) -> dict:
    return loads(row.get("data"), {}) or {}


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def prune_bodies(db: sqlite_utils.Database, before: str) -> int:
    """Drop the rendered bodies of subscriber digests built before ``before`` whose delivery is
    settled (sent, failed or bounced). A thousand subscribers' digests are ~70 MB a week; what
    was sent stays known through ``digest_items``/``sent_items`` and the subject line. Public
    archive issues are kept whole (the archive re-renders them)."""
    with db.atomic():
        cursor = db.execute("""
            update digests set html = null, text = null, data = null
            where subscriber_id is not null and created_at < ? and html is not null
              and not exists (select 1 from deliveries d where d.digest_id = digests.id and d.status = 'pending')
        """, [before])
        return cursor.rowcount


def public_issue_index(db: sqlite_utils.Database, limit: int | None = None) -> list[dict]:
    """The public issues without their bodies (id, period, subject, item count), newest first."""
    sql = ("select id, period_start, period_end, subject, item_count from digests where subscriber_id is null "
           "and data is not null order by period_end desc, id desc")
    return list(db.query(sql + (" limit ?" if limit else ""), [limit] if limit else []))


def public_issue_on(db: sqlite_utils.Database, day: str) -> dict | None:
    """The (latest) public issue whose period ends on ``day`` (YYYY-MM-DD), with its data."""
    rows = list(db["digests"].rows_where("subscriber_id is null and data is not null and substr(period_end, 1, 10) = ?",
                                         [day], order_by="period_end desc, id desc", limit=1))
    return rows[0] if rows else None
