"""The item columns that hold JSON, and decoding a JSON column's value."""

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
