"""The SQL behind ``spsbot search``, ``spsbot export`` and the vector loading for hybrid search.

Nothing the user typed is ever put into SQL text: filter values and the FTS5 MATCH expression are
always bound parameters (see ``bot.search.fts_expression`` for how the MATCH string is built).
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import sqlite_utils

from bot.store.columns import in_chunks
from bot.store.ranking import EmbeddingCache

# What a failed database call raises, for the search modules (which hold no sqlite3 code): a
# read-only store still searches, it just cannot cache what it embedded.
StoreError = sqlite3.Error


class MatchError(ValueError):
    """SQLite refused an FTS5 MATCH expression (or could not run it); str() is its message."""


class BudgetSpent(Exception):
    """A statement ran past the search's time budget and SQLite interrupted it."""


# How many SQLite virtual-machine steps run between two looks at the clock: ~1 ms of work, so
# the budget is kept to within a millisecond or two and the clock costs nothing measurable.
_STEPS_PER_CHECK = 10_000


@contextmanager
def time_budget(db: sqlite_utils.Database, seconds: float | None):
    """Interrupt any statement on ``db``'s connection once ``seconds`` have passed (None: no
    limit); the interrupted statement raises BudgetSpent. The budget is enforced inside SQLite
    (a progress handler), so a query whose cost grows with the store — an FTS5 expression that
    matches most of it — is stopped where it is, not after it finishes."""
    if seconds is None:
        yield
        return
    deadline = time.monotonic() + seconds
    spent = []

    def past_deadline() -> int:
        if time.monotonic() > deadline:
            spent.append(True)
            return 1  # non-zero: SQLite stops the statement with SQLITE_INTERRUPT
        return 0

    db.conn.set_progress_handler(past_deadline, _STEPS_PER_CHECK)
    try:
        yield
    except sqlite3.OperationalError:
        if spent:
            raise BudgetSpent(f"interrupted after {seconds:g} s") from None
        raise
    finally:
        db.conn.set_progress_handler(None, 0)


# An item's date for --since/--until: its publication date (as precise as the source gave it),
# else its publication year, else the day PubMed indexed it / the trial was first posted.
DATE_EXPR = ("coalesce(items.pub_date, CAST(items.pub_year AS TEXT), substr(items.entrez_date, 1, 10))")


@dataclass
class Filters:
    """What ``search`` and ``export`` narrow results by. Empty lists / None mean "any"."""

    kind: str | None = None                              # paper | trial
    themes: list[str] = field(default_factory=list)      # any of these theme labels (scores.labels)
    since: str | None = None                             # ISO date, inclusive (YYYY[-MM[-DD]])
    until: str | None = None                             # ISO date, inclusive
    pub_types: list[str] = field(default_factory=list)   # any pub type containing one of these
    statuses: list[str] = field(default_factory=list)    # trials: extra.overall_status, any of these
    relevant_only: bool = False                          # only items the ranker judged relevant

    def is_empty(self) -> bool:
        return not (self.kind or self.themes or self.since or self.until or self.pub_types
                    or self.statuses or self.relevant_only)


def normalise_status(value: str) -> str:
    """'not yet recruiting' / 'Not_Yet_Recruiting' -> 'NOT_YET_RECRUITING' (CT.gov v2 enum form)."""
    return "_".join(value.replace("-", " ").replace("_", " ").split()).upper()


def filter_sql(filters: Filters) -> tuple[str, list]:
    """A WHERE fragment over ``items`` (always true when no filter is set) and its parameters."""
    clauses, params = [], []
    if filters.kind:
        clauses.append("items.kind = ?")
        params.append(filters.kind)
    if filters.themes:
        marks = ", ".join("?" for _ in filters.themes)
        clauses.append("EXISTS (SELECT 1 FROM scores AS s, json_each(s.labels) AS label "
                       f"WHERE s.item_id = items.id AND json_valid(s.labels) AND label.value IN ({marks}))")
        params.extend(filters.themes)
    if filters.since:
        # A year-only pub_date "2023" must pass --since 2023-01-01: compare on the shorter length.
        clauses.append(f"{DATE_EXPR} >= substr(?, 1, length({DATE_EXPR}))")
        params.append(filters.since)
    if filters.until:
        clauses.append(f"{DATE_EXPR} <= ?")
        params.append(filters.until)
    if filters.pub_types:
        ors = " OR ".join("instr(lower(pt.value), ?) > 0" for _ in filters.pub_types)
        clauses.append("EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(items.pub_types) "
                       f"THEN items.pub_types ELSE '[]' END) AS pt WHERE {ors})")
        params.extend(p.lower() for p in filters.pub_types)
    if filters.statuses:
        marks = ", ".join("?" for _ in filters.statuses)
        clauses.append("(CASE WHEN json_valid(items.extra) THEN upper(replace(json_extract(items.extra, "
                       f"'$.overall_status'), ' ', '_')) END) IN ({marks})")
        params.extend(normalise_status(s) for s in filters.statuses)
    if filters.relevant_only:
        clauses.append("EXISTS (SELECT 1 FROM scores AS s WHERE s.item_id = items.id AND s.relevant = 1)")
    return (" AND ".join(clauses) or "1"), params


def fts_rowids(db: sqlite_utils.Database, match: str, filters: Filters, limit: int) -> list[tuple[int, float]]:
    """(items.rowid, bm25) best first for an FTS5 MATCH expression (a bound parameter).

    With filters, the ranked matches are read in growing slices and only those rows are checked
    against the filters: joining every match to ``items`` first costs ~10x more on a common word.
    """
    try:
        return _fts_rowids(db, match, filters, limit)
    except sqlite3.OperationalError as e:
        if e.sqlite_errorcode == sqlite3.SQLITE_INTERRUPT:
            raise  # the time budget (``time_budget``), not the expression
        raise MatchError(str(e)) from None


def _fts_rowids(db: sqlite_utils.Database, match: str, filters: Filters, limit: int) -> list[tuple[int, float]]:
    sql = "SELECT rowid, rank FROM items_fts WHERE items_fts MATCH ? ORDER BY rank LIMIT ?"
    if filters.is_empty():
        return [(row[0], row[1]) for row in db.execute(sql, [match, limit]).fetchall()]
    depth = limit * 5
    while True:
        ranked = db.execute(sql, [match, depth]).fetchall()
        passing = passing_rowids(db, filters, [row[0] for row in ranked])
        kept = [(row[0], row[1]) for row in ranked if row[0] in passing][:limit]
        if len(kept) >= limit or len(ranked) < depth:
            return kept
        depth *= 4


def passing_rowids(db: sqlite_utils.Database, filters: Filters, rowids: list[int]) -> set[int]:
    """Which of ``rowids`` pass the filters."""
    where, params = filter_sql(filters)
    passing: set[int] = set()
    for marks, chunk in in_chunks(rowids):
        passing.update(row[0] for row in db.execute(
            f"SELECT items.rowid FROM items WHERE items.rowid IN ({marks}) AND {where}", [*chunk, *params]))
    return passing


def fts_snippets(db: sqlite_utils.Database, match: str, item_ids: list[str], start: str, end: str,
                 tokens: int = 24) -> dict[str, str]:
    """item id -> FTS5's ``snippet()`` of the abstract where the words matched (else of the
    title), the matched words between ``start`` and ``end`` (markers the caller escapes around);
    items the expression does not match are left out."""
    if not item_ids:
        return {}
    marks = ", ".join("?" for _ in item_ids[:500])
    sql = (f"SELECT items.id, snippet(items_fts, 1, ?1, ?2, '…', ?3), snippet(items_fts, 0, ?1, ?2, '…', ?3) "
           f"FROM items_fts JOIN items ON items.rowid = items_fts.rowid WHERE items_fts MATCH ?4 "
           f"AND items.id IN ({marks})")
    try:
        rows = db.execute(sql, [start, end, tokens, match, *item_ids[:500]]).fetchall()
    except sqlite3.OperationalError as e:
        raise MatchError(str(e)) from None
    return {item_id: abstract if abstract and start in abstract else title for item_id, abstract, title in rows}


def matching_rowids(db: sqlite_utils.Database, match: str) -> set[int]:
    """Every rowid matching an FTS5 expression (used for -term exclusions of semantic hits)."""
    return {row[0] for row in db.execute("SELECT rowid FROM items_fts WHERE items_fts MATCH ?", [match])}


ITEM_COLUMNS = ("id", "kind", "title", "abstract", "authors", "journal", "pub_date", "pub_year",
                "entrez_date", "pub_types", "mesh", "keywords", "doi", "pmid", "nct_id", "url", "extra",
                "sources", "first_seen")


def items_by_rowid(db: sqlite_utils.Database, rowids: Iterable[int]) -> dict[int, dict]:
    """Item rows joined with their scores, keyed by rowid."""
    result: dict[int, dict] = {}
    columns = ", ".join(f"items.{c}" for c in ITEM_COLUMNS)
    for marks, chunk in in_chunks(rowids):
        sql = (f"SELECT items.rowid AS _rowid, {columns}, scores.relevance, scores.relevant, scores.labels, "
               "scores.why FROM items LEFT JOIN scores ON scores.item_id = items.id "
               f"WHERE items.rowid IN ({marks})")
        cursor = db.execute(sql, chunk)
        names = [d[0] for d in cursor.description]
        for row in cursor.fetchall():
            record = dict(zip(names, row))
            result[record.pop("_rowid")] = record
    return result


def scored_item(db: sqlite_utils.Database, item_id: str) -> dict | None:
    """The item ``item_id`` joined with its scores (``items_by_rowid``'s shape), or None."""
    row = db.execute("SELECT rowid FROM items WHERE id = ?", [item_id]).fetchone()
    return items_by_rowid(db, [row[0]])[row[0]] if row else None


def export_rows(db: sqlite_utils.Database, filters: Filters, limit: int | None = None) -> Iterable[dict]:
    """Items matching the filters with their scores, most relevant first, then newest."""
    where, params = filter_sql(filters)
    columns = ", ".join(f"items.{c}" for c in ITEM_COLUMNS)
    sql = (f"SELECT {columns}, scores.relevance, scores.relevant, scores.themes, scores.labels, scores.why "
           f"FROM items LEFT JOIN scores ON scores.item_id = items.id WHERE {where} "
           f"ORDER BY coalesce(scores.relevance, -1) DESC, {DATE_EXPR} DESC, items.id")
    if limit:
        sql += " LIMIT ?"
        params = [*params, limit]
    cursor = db.execute(sql, params)
    names = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(names, row))


# --- vectors ---------------------------------------------------------------------------------
# Search ranks items by one vector each: the normalised mean of the item's sentence vectors (the
# ranker's "doc vector"; the sentence vectors are the ranker's cache, keyed by sha256 of each
# sentence). The mean is itself cached in ``embeddings`` under the model name + DOC_SUFFIX, keyed
# by the item's content hash, so loading every item's vector is one SQL join, not a re-split of
# every abstract.
DOC_SUFFIX = "#doc-mean"


def doc_model(model: str) -> str:
    return model + DOC_SUFFIX


def data_version(db: sqlite_utils.Database, model: str) -> tuple:
    """O(log n) fingerprint of what the vector matrix is built from: the file, its newest item and
    its newest cached vector.

    Items are never deleted, a new item gets a new rowid, and a changed text gets a new vector row
    (a new content hash, ``replace`` re-inserts): these move whenever the matrix would change.
    Other writes — a sign-up, a vote, scores — leave it as it is, and it is the same for every
    connection to the file, so the web front's worker threads share one matrix and its own writes
    never make the next search reload the whole store's vectors (``PRAGMA data_version`` did, and
    differed per connection). Counting rows instead would scan 100,000 index entries per query.
    """
    row = db.execute("PRAGMA database_list").fetchone()
    path = row[2] if row else ""
    try:
        file_id = os.stat(path).st_ino if path else id(db.conn)
    except OSError:
        file_id = id(db.conn)
    newest_item = db.execute("SELECT max(rowid) FROM items").fetchone()[0]
    newest_vector = db.execute("SELECT max(rowid) FROM embeddings").fetchone()[0]
    return (file_id, newest_item, newest_vector, model)


def doc_vectors(db: sqlite_utils.Database, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(rowids, matrix) of every item that has a cached doc vector for ``model``."""
    rows = db.execute("SELECT items.rowid, embeddings.vector FROM items JOIN embeddings "
                      "ON embeddings.content_hash = items.content_hash AND embeddings.model = ? "
                      "ORDER BY items.rowid", [doc_model(model)]).fetchall()
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    return rowids, matrix


def items_without_doc_vector(db: sqlite_utils.Database, model: str) -> list[dict]:
    cursor = db.execute("SELECT items.rowid AS rowid, id, kind, title, abstract, extra, content_hash FROM items "
                        "WHERE items.content_hash IS NOT NULL AND NOT EXISTS (SELECT 1 FROM embeddings "
                        "WHERE embeddings.model = ? "
                        "AND embeddings.content_hash = items.content_hash) ORDER BY items.rowid",
                        [doc_model(model)])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def store_doc_vectors(db: sqlite_utils.Database, model: str, vectors: dict[str, np.ndarray]) -> None:
    """Cache doc vectors (item content hash -> vector) in the embedding cache."""
    EmbeddingCache(db).put_hashed(vectors, doc_model(model))
