"""Incremental state per source and query (``source_state``): where the last successful fetch
ended, so the next one asks only for what is new."""

from __future__ import annotations

import hashlib
import json

import sqlite_utils


def _state_key(source: str, query: str) -> str:
    return f"{source}:{hashlib.sha256(query.encode('utf-8')).hexdigest()[:16]}"


def get_state(db: sqlite_utils.Database, source: str, query: str) -> dict | None:
    rows = list(db["source_state"].rows_where("key = ?", [_state_key(source, query)], limit=1))
    return rows[0] if rows else None


def set_state(db: sqlite_utils.Database, source: str, query: str, last_success: str,
              window_end: str | None = None, extra: dict | None = None) -> None:
    with db.atomic():
        db["source_state"].upsert({
            "key": _state_key(source, query), "source": source, "query": query,
            "last_success": last_success, "window_end": window_end,
            "extra": json.dumps(extra) if extra else None,
        }, pk="key")
