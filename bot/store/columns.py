"""The item columns that hold JSON, and decoding a JSON column's value."""

from __future__ import annotations

import json

# Columns that hold JSON lists/objects.
JSON_COLUMNS = ("sources", "abstract_sections", "authors", "pub_types", "mesh", "keywords", "nct_ids", "extra")


def loads(value, default=None):
    """Decode a JSON column value (None → default)."""
    if value is None or value == "":
        return default
    return json.loads(value)
