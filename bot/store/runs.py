"""The run log: one ``runs`` row per command or source run, with its status, counts and error."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import Iterator

import sqlite_utils

from bot.redact import scrub
from bot.store.clock import now_iso


def start_run(db: sqlite_utils.Database, command: str, source: str | None = None) -> int:
    with db.atomic():
        return db["runs"].insert({"command": command, "source": source, "started": now_iso(),
                                  "status": "running"}).last_pk


def mark_interrupted_runs(db: sqlite_utils.Database) -> int:
    """Runs still "running" were killed (kill -9, power cut): mark them "interrupted".

    Only call this while holding the writer lock (``bot.lock.db_lock``): then no other process
    can be running, so a "running" row is one whose process died before finishing it.
    """
    with db.atomic():
        cursor = db.execute("update runs set status = 'interrupted', error = coalesce(error, "
                            "'the process ended without finishing (killed or crashed)') where status = 'running'")
    return cursor.rowcount


def finish_run(db: sqlite_utils.Database, run_id: int, status: str, counts: dict | None = None,
               error: str | None = None, started_monotonic: float | None = None) -> None:
    row = {"finished": now_iso(), "status": status,
           "counts": scrub(json.dumps(counts or {}, sort_keys=True)), "error": scrub(error) if error else error}
    if started_monotonic is not None:
        row["duration_s"] = round(time.monotonic() - started_monotonic, 3)
    with db.atomic():
        db["runs"].update(run_id, row)


@contextmanager
def recorded_run(db: sqlite_utils.Database, command: str, source: str | None = None) -> Iterator[dict]:
    """Record a run: yields a counts dict to fill; status ok, or failed with the error on exception.

    Set ``counts["_status"]`` to override the final status (e.g. "partial").
    """
    run_id = start_run(db, command, source)
    started = time.monotonic()
    counts: dict = {}
    try:
        yield counts
    except BaseException as e:  # noqa: BLE001 - recorded, then re-raised
        counts.pop("_status", None)
        counts.pop("_error", None)
        finish_run(db, run_id, "failed", counts, error=f"{type(e).__name__}: {e}"[:2000],
                   started_monotonic=started)
        raise
    status = counts.pop("_status", "ok")
    finish_run(db, run_id, status, counts, error=counts.pop("_error", None), started_monotonic=started)
