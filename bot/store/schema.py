"""Schema as data, applied as numbered migrations.

Each migration is a function of the database, run once, in order, inside a transaction, and
recorded in ``_migrations``. Never edit a migration that has shipped: append a new one.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlite_utils


def m001_core(db: sqlite_utils.Database) -> None:
    """Items (papers and trials), full-text search, runs and incremental source state."""
    db["items"].create({
        "id": str,              # natural key: pmid:N, nct:NCT…, doi:…, feed:<hash>
        "kind": str,            # paper | trial
        "sources": str,         # JSON list of sources that delivered it: pubmed, ctgov, feed:<name>
        "pmid": str, "doi": str, "pmcid": str, "nct_id": str,
        "title": str, "abstract": str,
        "abstract_sections": str,  # JSON [{"label":…, "text":…}]
        "authors": str,         # JSON list of display names ("Dalakas MC", "Canadian … Network")
        "journal": str,
        "pub_date": str,        # ISO, as precise as the source: 2024, 2024-05, 2024-05-17
        "pub_year": int,
        "entrez_date": str,     # PubMed's Entrez date (ISO) or the trial's first-posted date
        "pub_types": str, "mesh": str, "keywords": str,  # JSON lists
        "nct_ids": str,         # JSON list of NCT ids the record itself names (not its references)
        "url": str,
        "extra": str,           # JSON: kind-specific fields (trial status, phases, …; feed entry data)
        "norm_title": str,      # lower-cased, punctuation-free title for matching feed ↔ PubMed
        "content_hash": str,    # hash of what ranking reads (title, abstract, types, mesh, keywords)
        "first_seen": str, "last_seen": str, "updated_at": str,
    }, pk="id", not_null={"kind", "title"})
    for column in ("pmid", "doi", "nct_id", "norm_title", "first_seen", "kind"):
        db["items"].create_index([column])
    db["items"].enable_fts(["title", "abstract"], create_triggers=True, tokenize="porter")

    db["runs"].create({
        "id": int, "command": str, "source": str, "started": str, "finished": str,
        "duration_s": float, "status": str,  # running | ok | partial | failed | nothing_new
        "counts": str,          # JSON {"fetched": n, "new": n, "updated": n, ...}
        "error": str,
    }, pk="id")
    db["runs"].create_index(["source", "started"])

    db["source_state"].create({
        "key": str,             # source + ":" + hash of the query, so a new query starts afresh
        "source": str, "query": str,
        "last_success": str,    # when the last successful fetch started (UTC ISO)
        "window_end": str,      # the upper bound of the last fetched window
        "extra": str,
    }, pk="key")


def m002_trials(db: sqlite_utils.Database) -> None:
    """Trial versions, field-level change events and paper ↔ trial links."""
    db["trial_versions"].create({
        "id": int, "nct_id": str, "version_date": str, "fetched_at": str,
        "content_hash": str, "data": str,
    }, pk="id")
    db["trial_versions"].create_index(["nct_id", "content_hash"], unique=True)
    db["trial_changes"].create({
        "id": int, "nct_id": str, "field": str, "old": str, "new": str,
        "detected_at": str, "version_date": str,
    }, pk="id")
    db["trial_changes"].create_index(["nct_id", "detected_at"])
    db["links"].create({"paper_id": str, "trial_id": str, "evidence": str, "created_at": str},
                       pk=("paper_id", "trial_id", "evidence"))
    db["links"].create_index(["trial_id"])


def m003_ranking(db: sqlite_utils.Database) -> None:
    """Embedding cache, scores with their evidence, curator feedback."""
    db["embeddings"].create({"content_hash": str, "model": str, "dims": int, "vector": bytes,
                             "created_at": str}, pk=("content_hash", "model"))
    db["scores"].create({
        "item_id": str, "relevance": float,
        "relevant": int,        # 1 if relevance is above the data-chosen threshold
        "themes": str,          # JSON {theme: score}
        "labels": str,          # JSON [theme, …] judged present
        "why": str,             # short human-readable reason
        "evidence": str,        # JSON {theme: {"sentence": …, "terms": [...]}}
        "scored_hash": str,     # content hash + ranker version: unchanged items are not re-scored
        "scored_at": str,
    }, pk="item_id")
    db["feedback"].create({"id": int, "item_id": str, "label": str, "theme": str,
                           "created_at": str, "note": str}, pk="id")
    db["feedback"].create_index(["item_id"])


def m004_digest(db: sqlite_utils.Database) -> None:
    """Subscribers, digests, what each subscriber was sent, and the delivery outbox."""
    db["subscribers"].create({
        "id": int, "email": str, "name": str,
        "themes": str,          # JSON list, null = all themes
        "frequency": str,       # weekly | daily | monthly
        "max_items": int, "send_empty": int,
        "status": str,          # active | unsubscribed | bouncing
        "bounces": int, "created_at": str, "updated_at": str,
    }, pk="id")
    db["subscribers"].create_index(["email"], unique=True)
    db["digests"].create({
        "id": int, "subscriber_id": int, "period_start": str, "period_end": str,
        "created_at": str, "subject": str, "html": str, "text": str, "item_count": int,
    }, pk="id")
    db["digest_items"].create({"digest_id": int, "item_id": str, "section": str, "theme": str,
                               "position": int}, pk=("digest_id", "item_id", "section"))
    # One row per (subscriber, item) ever sent: the guarantee that nobody gets an item twice.
    db["sent_items"].create({"subscriber_id": int, "item_id": str, "digest_id": int, "sent_at": str},
                            pk=("subscriber_id", "item_id"))
    db["deliveries"].create({
        "id": int, "digest_id": int, "subscriber_id": int, "message_id": str,
        "status": str,          # pending | sent | failed | bounced
        "attempts": int, "last_error": str, "created_at": str, "sent_at": str,
    }, pk="id")
    db["deliveries"].create_index(["digest_id", "subscriber_id"], unique=True)
    db["deliveries"].create_index(["status"])


MIGRATIONS = [
    ("001_core", m001_core),
    ("002_trials", m002_trials),
    ("003_ranking", m003_ranking),
    ("004_digest", m004_digest),
]


def ensure_db_shape(db: sqlite_utils.Database) -> list[str]:
    """Apply every migration not yet applied; return the names applied now."""
    if "_migrations" not in db.table_names():
        db["_migrations"].create({"name": str, "applied_at": str}, pk="name")
    done = {row["name"] for row in db["_migrations"].rows}
    applied = []
    for name, migrate in MIGRATIONS:
        if name in done:
            continue
        with db.atomic():  # one transaction per migration: all of it or none
            migrate(db)
            db["_migrations"].insert({"name": name,
                                      "applied_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        applied.append(name)
    return applied
