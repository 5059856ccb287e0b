"""Items: their identity (natural keys, normalised titles, content hashes), matching one paper seen
from several sources, and storing records (``save_items``)."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Iterable

import sqlite_utils

from bot.clock import now_iso
from bot.store.columns import JSON_COLUMNS, in_chunks, loads

ITEM_FIELDS = ("kind", "pmid", "doi", "pmcid", "nct_id", "title", "abstract", "abstract_sections",
               "authors", "journal", "pub_date", "pub_year", "entrez_date", "create_date", "pub_types", "mesh",
               "keywords", "nct_ids", "url", "extra")
# A feed's copy of a paper never overwrites what PubMed or ClinicalTrials.gov said.
_SOURCE_PRIORITY = {"pubmed": 3, "ctgov": 3}


def norm_title(title: str | None) -> str:
    """Lower-case, accent-free, punctuation-free title, for matching one paper across sources."""
    if not title:
        return ""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def content_hash(record: dict) -> str:
    """Hash of what the ranker reads: unchanged text is never embedded or scored twice."""
    parts = [record.get("title") or "", record.get("abstract") or "",
             json.dumps(sorted(record.get("pub_types") or [])), json.dumps(sorted(record.get("mesh") or [])),
             json.dumps(sorted(record.get("keywords") or []))]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def item_id_for(record: dict) -> str:
    """The natural key of a new item: NCT id, PMID, DOI, else a hash of its link or title."""
    if record.get("kind") == "trial" and record.get("nct_id"):
        return f"nct:{record['nct_id'].upper()}"
    if record.get("pmid"):
        return f"pmid:{record['pmid']}"
    if record.get("doi"):
        return f"doi:{record['doi'].lower()}"
    basis = record.get("url") or norm_title(record.get("title"))
    return "feed:" + hashlib.sha1(basis.encode("utf-8")).hexdigest()[:16]


def _items_where(db: sqlite_utils.Database, where: str, params: list, limit: int = 1) -> list[dict]:
    """Plain SELECT on items. Fetching is the hot path: sqlite-utils' ``rows_where`` re-inspects
    the table on every call, which doubled the cost of a backfill."""
    cursor = db.execute(f"select * from items where {where} limit {int(limit)}", params)
    columns = [c[0] for c in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def _find_existing(db: sqlite_utils.Database, record: dict) -> dict | None:
    """The stored item this record is, or None.

    Natural key first. A PMID is authoritative: a record with one is the item with that PMID,
    or an item still without a PMID (a feed's copy) that matches by DOI or title, never an item
    with another PMID (an erratum and its article share a DOI in real PubMed data and are two
    items). DOI, then normalised title, match feed items without a PMID. Trials match by NCT id.
    """
    rows = _items_where(db, "id = ?", [item_id_for(record)])
    if rows:
        return rows[0]
    if record.get("kind") == "trial":
        return None
    pmid = str(record["pmid"]) if record.get("pmid") else None
    if pmid:
        rows = _items_where(db, "pmid = ?", [pmid])
        if rows:
            return rows[0]

    def same_paper(row: dict) -> bool:
        return not (pmid and row.get("pmid") and str(row["pmid"]) != pmid)

    if record.get("doi"):
        doi = record["doi"].lower()
        rows = [r for r in _items_where(db, "lower(doi) = ?", [doi], limit=5) if same_paper(r)]
        if rows:
            return _best_by_title(rows, record)
        # A preprint merged with its published version keeps its other DOI in extra.other_dois.
        # The instr(extra, '"other_dois"') term lets SQLite use the partial index idx_items_other_dois
        # (only merged items) instead of scanning every paper for every new DOI.
        rows = _items_where(db, "kind = 'paper' and instr(extra, '\"other_dois\"') > 0 "
                                "and instr(lower(extra), ?) > 0", [json.dumps(doi)], limit=5)
        rows = [r for r in rows if doi in (loads(r["extra"], {}) or {}).get("other_dois", []) and same_paper(r)]
        if rows:
            return rows[0]
    # A title spsbot made from an untitled feed entry's first words is no paper's title to match.
    title = "" if (record.get("extra") or {}).get("title_from") else norm_title(record.get("title"))
    if len(title) >= 25:  # short titles ("Correction.") collide too easily
        # "+kind": keeps SQLite on the norm_title index (with the kind index it scans every paper).
        rows = _items_where(db, "norm_title = ? and +kind = 'paper'", [title], limit=5)
        # Same title under another DOI (preprint → published) is the same paper only if the
        # first authors agree; two different papers can share a long title.
        rows = [r for r in rows if same_paper(r) and (not (r.get("doi") and record.get("doi"))
                or _first_authors_overlap(loads(r.get("authors"), []), record.get("authors") or []))]
        if rows:
            return rows[0]
    return None


def _best_by_title(rows: list[dict], record: dict) -> dict:
    """Among items sharing a DOI (an article and its erratum), the one with the record's title,
    else the one that is not an erratum or retraction notice, else the first found."""
    title = norm_title(record.get("title"))
    for row in rows:
        if title and row.get("norm_title") == title:
            return row
    notices = ("Published Erratum", "Retraction of Publication")
    plain = [r for r in rows if not set(loads(r.get("pub_types"), []) or []) & set(notices)]
    return (plain or rows)[0]


def _first_authors_overlap(a: list, b: list) -> bool:
    """Do the first authors share a name word ("Dalakas MC" vs "Marinos C. Dalakas")? Unknown = yes."""
    if not a or not b:
        return True
    words = [set(w for w in norm_title(str(names[0])).split() if len(w) >= 3) for names in (a, b)]
    return bool(words[0] & words[1])


def _remember_other_doi(existing: dict, row: dict, changes: dict) -> None:
    """One paper under two DOIs (preprint → published) stays one item; the DOI not in the ``doi``
    column is kept in ``extra["other_dois"]`` so either DOI finds the item again."""
    existing_extra = loads(existing.get("extra"), {}) or {}
    kept = set(existing_extra.get("other_dois") or [])  # survives a source rewriting extra
    old, new = (existing.get("doi") or "").lower(), (row.get("doi") or "").lower()
    if old and new and old != new:
        kept.add(old if changes.get("doi") else new)
    extra = (loads(changes["extra"], {}) or {}) if changes.get("extra") else existing_extra
    if not kept or set(extra.get("other_dois") or []) == kept:
        return
    extra["other_dois"] = sorted(kept)
    changes["extra"] = json.dumps(extra, ensure_ascii=False, sort_keys=True)


def _row_from_record(record: dict) -> dict:
    row = {}
    for key in ITEM_FIELDS:
        value = record.get(key)
        if key in JSON_COLUMNS:
            value = json.dumps(value, ensure_ascii=False, sort_keys=True) if value not in (None, [], {}) else None
        elif value == "":
            value = None
        row[key] = value
    if row.get("pmid") is not None:
        row["pmid"] = str(row["pmid"])
    row["norm_title"] = norm_title(record.get("title"))
    row["content_hash"] = content_hash(record)
    return row


def _merge(existing: dict, new_row: dict, source: str) -> dict:
    """Fields to update on an existing item: new non-empty values, unless a feed would overwrite
    a value a primary source (PubMed, ClinicalTrials.gov) supplied."""
    existing_sources = loads(existing.get("sources"), [])
    primary_seen = any(_SOURCE_PRIORITY.get(s, 0) for s in existing_sources)
    feed_only_now = not _SOURCE_PRIORITY.get(source, 0)
    changes = {}
    for key, value in new_row.items():
        if value is None or value == existing.get(key):
            continue
        if feed_only_now and primary_seen and existing.get(key) is not None:
            continue
        changes[key] = value
    if source not in existing_sources:
        changes["sources"] = json.dumps(sorted(existing_sources + [source]))
    return changes


def save_items(db: sqlite_utils.Database, records: Iterable[dict], source: str | None = None,
               now: str | None = None) -> dict:
    """Store records (any iterable of plain dicts) in one transaction; return counts.

    Each record: ``kind`` ("paper"|"trial"), ``source`` (or the ``source`` argument), ``title`` and
    any of the item columns (``pmid``, ``doi``, ``abstract``, ``authors`` list, ``pub_types`` list,
    ``extra`` dict, …). Re-saving an unchanged record changes nothing but ``last_seen``.
    Returns {"new": n, "updated": n, "unchanged": n, "ids": [item ids in input order]}.
    """
    now = now or now_iso()
    counts = {"new": 0, "updated": 0, "unchanged": 0, "ids": []}
    with db.atomic():
        for record in records:
            src = record.get("source") or source or "unknown"
            row = _row_from_record(record)
            existing = _find_existing(db, record)
            if existing is None:
                row.update(id=item_id_for(record), sources=json.dumps([src]), first_seen=now,
                           last_seen=now, updated_at=now)
                db.execute(f"insert into items ({', '.join(row)}) values ({', '.join('?' * len(row))})",
                           list(row.values()))
                counts["new"] += 1
                counts["ids"].append(row["id"])
                continue
            changes = _merge(existing, row, src)
            _remember_other_doi(existing, row, changes)
            content_changed = bool(set(changes) - {"sources"})
            changes["last_seen"] = now
            if content_changed:
                changes["updated_at"] = now
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
            db.execute(f"update items set {', '.join(f'{k} = ?' for k in changes)} where id = ?",
                       [*changes.values(), existing["id"]])
            counts["ids"].append(existing["id"])
    return counts


def stored_pmids(db: sqlite_utils.Database, pmids: Iterable[str]) -> set[str]:
    """The PMIDs among ``pmids`` that an item holds."""
    found: set[str] = set()
    for marks, chunk in in_chunks(sorted({str(p) for p in pmids})):
        found |= {row[0] for row in db.execute(f"select pmid from items where pmid in ({marks})", chunk)}
    return found


def get_item(db: sqlite_utils.Database, item_id: str) -> dict | None:
    rows = _items_where(db, "id = ?", [item_id])
    return rows[0] if rows else None
