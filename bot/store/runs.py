"""The run log: one ``runs`` row per command or source run, with its status, counts and error."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import sqlite_utils

from bot.redact import scrub
from bot.clock import now_iso


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


@dataclass
class RunRecord:
    """What a recorded run writes into its ``runs`` row when it ends: fill it while it runs."""

    counts: dict = field(default_factory=dict)
    status: str = "ok"            # e.g. "partial" when a source kept going past a failed part
    error: str | None = None      # one line: why it was partial (a failed run records the exception)


@contextmanager
def recorded_run(db: sqlite_utils.Database, command: str, source: str | None = None) -> Iterator[RunRecord]:
    """Record a run: yields a ``RunRecord`` to fill; its status, or failed with the error on exception."""
    run_id = start_run(db, command, source)
    started = time.monotonic()
    record = RunRecord()
    try:
        yield record
    except BaseException as e:  # noqa: BLE001 - recorded, then re-raised
        finish_run(db, run_id, "failed", record.counts, error=f"{type(e).__name__}: {e}"[:2000],
                   started_monotonic=started)
        raise
    finish_run(db, run_id, record.status, record.counts, error=record.error, started_monotonic=started)
