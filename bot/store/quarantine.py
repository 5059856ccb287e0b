"""Quarantined records: what a source served that could not be parsed or stored.

Only for records that cannot be salvaged: a PubMed record whose only fault is a character XML
forbids or bytes that are not UTF-8 is stored repaired, with a note (``bot.sources.xml_repair``),
never held. One bad record never costs its batch or page: the fetch stores everything else, advances its
window, and puts the bad record here with its id, source and error (table ``quarantine``,
migration m006). A later fetch that parses the record releases it (``resolved_at``).
``spsbot status`` lists what is still held.
"""

from __future__ import annotations

import sqlite_utils

from bot.clock import now_iso
from bot.store.columns import in_chunks

__all__ = ["quarantine_record", "release_records", "open_quarantine", "quarantine_counts"]


def quarantine_record(db: sqlite_utils.Database, source: str, record_id: str, error: str,
                      now: str | None = None) -> None:
    """Hold one refused record (again): first_seen is kept, attempts counts the refusals."""
    now = now or now_iso()
    error = " ".join(str(error).split())[:500]
    with db.atomic():
        db.execute(
            "insert into quarantine (source, record_id, error, first_seen, last_seen, attempts, resolved_at) "
            "values (?, ?, ?, ?, ?, 1, null) on conflict (source, record_id) do update set "
            "error = excluded.error, last_seen = excluded.last_seen, attempts = quarantine.attempts + 1, "
            "resolved_at = null", [source, str(record_id), error, now, now])


def release_records(db: sqlite_utils.Database, source: str, record_ids, now: str | None = None) -> int:
    """Mark held records of ``source`` that were just stored as resolved; return how many."""
    ids = [str(i) for i in record_ids]
    if not ids:
        return 0
    now = now or now_iso()
    released = 0
    with db.atomic():
        for marks, chunk in in_chunks(ids):
            cursor = db.execute("update quarantine set resolved_at = ? where source = ? and resolved_at is null "
                                f"and record_id in ({marks})", [now, source, *chunk])
            released += cursor.rowcount
    return released


def open_quarantine(db: sqlite_utils.Database, source: str | None = None) -> list[dict]:
    """Records still held (not resolved), oldest first (none in a store from before migration 006,
    which ``status`` may read without migrating)."""
    if "quarantine" not in db.table_names():
        return []
    sql = ("select source, record_id, error, first_seen, last_seen, attempts from quarantine "
           "where resolved_at is null")
    args: list = []
    if source:
        sql += " and source = ?"
        args.append(source)
    return list(db.query(sql + " order by first_seen, source, record_id", args))


def quarantine_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """source -> number of records still held."""
    if "quarantine" not in db.table_names():
        return {}
    return dict(db.execute("select source, count(*) from quarantine where resolved_at is null "
                           "group by source order by source").fetchall())
