"""The one place spsbot reads and writes its SQLite database (all SQL lives in this package).

Sources yield plain record dicts (see ``save_items``); this package stores them under natural
keys, merges the same paper seen from several sources into one item, and keeps the run log and
the incremental state. One module per job: ``connection`` (open, scratch copy, integrity),
``items`` (identity and ``save_items``), ``runs`` (the run log), ``state`` (incremental state),
``columns`` (JSON columns), ``schema`` (migrations; the clock is ``bot.clock``); other
stages' tables live beside them (``trials``, ``ranking``, ``digests``, ``subscribers``, ``search``).
The names below are re-exported so callers import them from ``bot.store``.
"""

from __future__ import annotations

from bot.clock import now_iso
from bot.store.columns import loads
from bot.store.connection import (DatabaseOpenError, MissingDatabaseError, database_exists, db_file,
                                  integrity_problem, open_db, scratch_copy)
from bot.store.items import content_hash, get_item, item_id_for, norm_title, save_items, stored_pmids
from bot.store.runs import RunRecord, finish_run, mark_interrupted_runs, recorded_run, start_run
from bot.store.schema import ensure_db_shape
from bot.store.state import get_state, set_state

__all__ = [
    "open_db", "ensure_db_shape", "save_items", "item_id_for", "norm_title", "content_hash",
    "now_iso", "start_run", "finish_run", "recorded_run", "RunRecord", "get_state", "set_state", "loads",
    "stored_pmids", "integrity_problem", "scratch_copy", "db_file", "get_item", "mark_interrupted_runs",
    "DatabaseOpenError", "MissingDatabaseError", "database_exists",
]
