"""The read-only queries behind ``spsbot status`` (``bot.status``) and the web front's health check.

Each function answers one question about runs, items or deliveries; ``bot.status`` turns the
answers into the report (staleness, problems, scrubbed error texts).
"""

from __future__ import annotations

import sqlite_utils

__all__ = ["last_run", "last_successful_run", "recorded_sources", "newest_first_seen_by_source_tag",
           "item_counts", "relevant_item_count", "delivery_counts", "failing_deliveries", "last_command_runs", "ping"]


def last_run(db: sqlite_utils.Database, source: str) -> dict | None:
    """The newest ``runs`` row of a fetch source, or None."""
    return next(db.query("SELECT * FROM runs WHERE source = ? ORDER BY started DESC, id DESC LIMIT 1", [source]), None)


def last_successful_run(db: sqlite_utils.Database, source: str, statuses: tuple[str, ...]) -> dict | None:
    """The newest ``runs`` row of a fetch source whose status is one of ``statuses``, or None."""
    marks = ", ".join("?" for _ in statuses)
    return next(db.query(f"SELECT * FROM runs WHERE source = ? AND status IN ({marks}) "
                           "ORDER BY started DESC, id DESC LIMIT 1", [source, *statuses]), None)


def recorded_sources(db: sqlite_utils.Database) -> list[str]:
    """Every fetch source that has a run on record."""
    return [r[0] for r in db.execute("SELECT DISTINCT source FROM runs WHERE source IS NOT NULL")]


def newest_first_seen_by_source_tag(db: sqlite_utils.Database) -> list[tuple[str, str]]:
    """(tag in ``items.sources``, newest ``first_seen`` of the items carrying it); a row whose
    ``sources`` is not valid JSON counts for no tag."""
    return db.execute("SELECT src.value, max(items.first_seen) FROM items, json_each("
                      "CASE WHEN json_valid(items.sources) THEN items.sources ELSE '[]' END) AS src "
                      "GROUP BY src.value").fetchall()


def item_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """kind ("paper", "trial") -> how many items are stored."""
    return dict(db.execute("SELECT kind, count(*) FROM items GROUP BY kind").fetchall())


def relevant_item_count(db: sqlite_utils.Database) -> int:
    """How many stored items the ranker judged relevant (their latest score)."""
    return db.execute("SELECT count(*) FROM scores WHERE relevant = 1").fetchone()[0]


def delivery_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """delivery status ("pending", "sent", "failed", "bounced") -> how many outbox rows have it."""
    return dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())


def failing_deliveries(db: sqlite_utils.Database, since: str) -> tuple[int, int, str | None]:
    """(pending deliveries already tried, deliveries failed or bounced since ``since``, the
    latest error of either kind) — the error text as stored, not scrubbed."""
    retrying = db.execute("SELECT count(*) FROM deliveries WHERE status = 'pending' "
                          "AND coalesce(attempts, 0) > 0").fetchone()[0]
    failed = db.execute("SELECT count(*) FROM deliveries WHERE status IN ('failed', 'bounced') "
                        "AND created_at >= ?", [since]).fetchone()[0]
    row = db.execute("SELECT last_error FROM deliveries WHERE last_error IS NOT NULL AND (status IN "
                     "('failed', 'bounced') AND created_at >= ? OR status = 'pending') ORDER BY id DESC LIMIT 1",
                     [since]).fetchone()
    return retrying, failed, row[0] if row else None


def last_command_runs(db: sqlite_utils.Database) -> list[dict]:
    """The newest run of each whole-stage command (runs with no single source: run, rank, digest…),
    newest first: command, started, finished, duration_s, status, error (as stored)."""
    rows = db.execute("SELECT command, started, finished, duration_s, status, error FROM runs AS r "
                      "WHERE source IS NULL AND id = (SELECT id FROM runs WHERE source IS NULL AND "
                      "command = r.command ORDER BY started DESC, id DESC LIMIT 1) ORDER BY started DESC").fetchall()
    names = ("command", "started", "finished", "duration_s", "status", "error")
    return [dict(zip(names, row)) for row in rows]


def ping(db: sqlite_utils.Database) -> None:
    """Read from the database once (raises ``sqlite3.Error`` when it cannot be read)."""
    db.execute("select 1").fetchone()
