"""The item columns that hold JSON, decoding a JSON column's value, and ``in (…)`` lists."""

from __future__ import annotations

import json

# Columns that hold JSON lists/objects.
JSON_COLUMNS = ("sources", "abstract_sections", "authors", "pub_types", "mesh", "keywords", "nct_ids", "extra")


def loads(value, default=None):
    """Decode a JSON column value: None, "" or text that is not JSON → ``default``; with a list
    or dict ``default``, JSON of another type → ``default`` too (one bad cell never stops a reader)."""
    if value is None or value == "":
        return default
    try:
        decoded = json.loads(value)
    except (TypeError, ValueError):
        return default
    if isinstance(default, (list, dict)) and not isinstance(decoded, type(default)):
        return default
    return decoded


def in_chunks(values, size: int = 500):
    """(``"?,?,…"``, chunk) for every ``size`` of ``values``: an ``in (…)`` query binds a few hundred
    values at a time, well under SQLite's bound-parameter limit (999 on old builds)."""
    values = list(values)
    for start in range(0, len(values), size):
        chunk = values[start:start + size]
        yield ",".join("?" * len(chunk)), chunk
