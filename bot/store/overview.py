"""What the database holds, in a few numbers and titles (the demo's summary)."""

from __future__ import annotations

import sqlite_utils


def item_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """{"items": every stored item, "papers": those of kind paper}."""
    return {"items": db["items"].count,
            "papers": db.execute("select count(*) from items where kind = 'paper'").fetchone()[0]}


def newest_papers(db: sqlite_utils.Database, limit: int = 5) -> list[dict]:
    """The most recently indexed papers (by Entrez date): id, entrez_date, title."""
    rows = db.execute("select id, entrez_date, title from items where kind = 'paper' "
                      "order by entrez_date desc, id limit ?", [limit]).fetchall()
    return [{"id": i, "entrez_date": d, "title": t} for i, d, t in rows]


def titles(db: sqlite_utils.Database, ids) -> dict[str, str]:
    """item id -> title, for the given ids that are stored."""
    ids = list(ids)
    if not ids:
        return {}
    marks = ", ".join("?" for _ in ids)
    return dict(db.execute(f"select id, title from items where id in ({marks})", ids).fetchall())
