"""Ranking's tables: the embedding cache, scores, curator feedback and the ranker's records.

Embeddings are keyed by (sha256 of the exact text, model name), so an unchanged text is never
embedded twice, whoever asks (the ranker and search, through ``bot.ranking.cached_embedder``).
Scores remember what they were computed from (``scored_hash`` = item content hash + ranker state),
so the rank stage (``bot.ranking.stage``) re-scores only what changed. Nothing here imports from
``bot.ranking``: the store is below it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Iterable

import numpy as np
import sqlite_utils

from bot.store import loads, now_iso
from bot.store.columns import in_chunks
from bot.store.digests import get_setting, set_setting

log = logging.getLogger(__name__)

FEEDBACK_LABELS = ("relevant", "irrelevant")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """float32 vectors in the ``embeddings`` table, keyed by (sha256(text), model)."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    def get_many(self, texts: Iterable[str], model: str) -> dict[str, np.ndarray]:
        """The cached vectors among ``texts`` (missing ones are simply absent)."""
        by_hash = {text_hash(t): t for t in texts}
        found: dict[str, np.ndarray] = {}
        for marks, chunk in in_chunks(by_hash):
            rows = self.db.execute(
                f"select content_hash, vector from embeddings where model = ? and content_hash in ({marks})",
                [model, *chunk]).fetchall()
            for digest, blob in rows:
                found[by_hash[digest]] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, vectors: dict[str, np.ndarray], model: str) -> None:
        """Store vectors by text; a 2-D array (a passage's sentence vectors) is stored as its rows
        one after the other (``dims`` is the width of a row)."""
        self.put_hashed({text_hash(t): v for t, v in vectors.items()}, model)

    def put_hashed(self, vectors: dict[str, np.ndarray], model: str) -> None:
        """Store vectors under keys that are already hashes (search's doc vectors are keyed by
        the item's content hash)."""
        now = now_iso()
        rows = [{"content_hash": key, "model": model, "dims": int(v.shape[-1]),
                 "vector": np.asarray(v, dtype=np.float32).tobytes(), "created_at": now}
                for key, v in vectors.items()]
        with self.db.atomic():
            self.db["embeddings"].upsert_all(rows, pk=("content_hash", "model"))


# --- feedback -------------------------------------------------------------------------------

def save_feedback(db: sqlite_utils.Database, item_id: str, label: str, theme: str | None = None,
                  note: str | None = None, remove: bool = False) -> None:
    """Store a curator's judgement; the latest judgement per (item, theme) wins.

    ``label`` is "relevant" or "irrelevant"; with ``theme`` it says whether that theme is present.
    ``remove`` deletes the judgements for (item, theme) instead.
    """
    if label not in FEEDBACK_LABELS and not remove:
        raise ValueError(f"label must be one of {', '.join(FEEDBACK_LABELS)}, got {label!r}")
    with db.atomic():
        db.execute("delete from feedback where item_id = ? and coalesce(theme, '') = ?", [item_id, theme or ""])
        if not remove:
            db["feedback"].insert({"item_id": item_id, "label": label, "theme": theme or None,
                                   "created_at": now_iso(), "note": note})


def load_feedback(db: sqlite_utils.Database) -> list[dict]:
    """All judgements the ranker learns from: [{"item_id", "label", "theme" (None = relevance),
    "created_at"}], oldest first. The ranker reads them through ``training_feedback``, with the
    subscribers' votes; ``label --review`` through ``unjudged_scored_items``."""
    if "feedback" not in db.table_names():
        return []
    return list(db.query("select item_id, label, theme, created_at from feedback order by id"))


def unjudged_scored_items(db: sqlite_utils.Database) -> list[dict]:
    """Scored ``items`` rows no judgement covers yet (for relevance), by id, each with its stored
    ``_relevance`` and ``_relevant``: what ``spsbot label --review`` may ask about."""
    judged = {f["item_id"] for f in load_feedback(db) if not f.get("theme")}
    rows = db.execute("select items.*, scores.relevance as _relevance, scores.relevant as _relevant from items "
                      "join scores on scores.item_id = items.id order by items.id")
    names = [c[0] for c in rows.description]
    return [row for row in (dict(zip(names, values)) for values in rows.fetchall()) if row["id"] not in judged]


def feedback_hash(feedback: list[dict]) -> str:
    """A short hash of the judgements (order-free), part of every score's ``scored_hash``."""
    keys = sorted((f["item_id"], f["label"], f.get("theme") or "") for f in feedback)
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:12]


# --- scores ---------------------------------------------------------------------------------

def get_scores(db: sqlite_utils.Database, item_ids: list[str] | None = None) -> dict[str, dict]:
    """Stored scores by item id, JSON columns decoded."""
    if item_ids is None:
        rows = db["scores"].rows
    else:
        rows = (r for marks, chunk in in_chunks(item_ids)
                for r in db["scores"].rows_where(f"item_id in ({marks})", chunk))
    out = {}
    for row in rows:
        row = dict(row)
        for key, default in (("themes", {}), ("labels", []), ("evidence", {})):
            row[key] = loads(row.get(key), default)
        row["relevant"] = bool(row.get("relevant"))
        out[row["item_id"]] = row
    return out


def stored_decisions(db: sqlite_utils.Database, item_ids: list[str]) -> dict[str, bool]:
    """The stored relevance decision of each scored item among ``item_ids``."""
    return {row["item_id"]: bool(row["relevant"]) for marks, chunk in in_chunks(item_ids)
            for row in db["scores"].rows_where(f"item_id in ({marks})", chunk, select="item_id, relevant")}


def save_scores(db: sqlite_utils.Database, scored: list[tuple[str, str, dict]]) -> None:
    """Upsert (item_id, scored_hash, result) triples into ``scores``."""
    now = now_iso()
    rows = [{"item_id": item_id, "relevance": result["relevance"], "relevant": int(result["relevant"]),
             "themes": json.dumps(result["themes"]), "labels": json.dumps(result["labels"]),
             "why": result["why"], "evidence": json.dumps(result["evidence"], ensure_ascii=False),
             "scored_hash": scored_hash, "scored_at": now}
            for item_id, scored_hash, result in scored]
    with db.atomic():
        db["scores"].upsert_all(rows, pk="item_id")


# --- the rank stage's reads and records -------------------------------------------------------

def items_by_id(db: sqlite_utils.Database, ids: list[str]) -> dict[str, dict]:
    """``items`` rows by id (ids not stored are absent)."""
    out = {}
    for marks, chunk in in_chunks(ids):
        for row in db["items"].rows_where(f"id in ({marks})", chunk):
            out[row["id"]] = row
    return out


def mesh_indexed_items(db: sqlite_utils.Database) -> list[dict]:
    """``items`` rows NLM has given MeSH headings (``mesh`` a non-empty list), by id: the ones that
    can carry a weak relevance label (``bot.ranking.weak``)."""
    return list(db["items"].rows_where("mesh is not null and mesh not in ('', '[]')", order_by="id"))


def recent_items(db: sqlite_utils.Database, limit: int) -> list[dict]:
    """The ``limit`` most recently stored ``items`` rows (newest first, then by id)."""
    return list(db["items"].rows_where(order_by="first_seen desc, id", limit=limit))


def record_model_files(db: sqlite_utils.Database, fingerprint: str, model_files: dict | None) -> None:
    """Keep which model files (sha256 each) the ranker state ``fingerprint`` was computed with
    (``bot.ranking.model_files.check_model``'s answer; None when no model was loaded)."""
    if not model_files:
        return
    files = json.dumps(model_files.get("files") or {}, sort_keys=True)
    previous = db.execute("SELECT files FROM ranker_models WHERE model = ? ORDER BY recorded_at DESC LIMIT 1",
                          [model_files["model"]]).fetchone()
    if previous and previous[0] != files and not model_files.get("verified"):
        log.warning("the files of embedding model %s changed since it last ranked (recorded in ranker_models)",
                    model_files["model"])
    with db.atomic():
        db["ranker_models"].upsert({"fingerprint": fingerprint, "model": model_files["model"], "files": files,
                                    "verified": int(bool(model_files.get("verified"))), "recorded_at": now_iso()},
                                   pk="fingerprint")


def record_seed_state(db: sqlite_utils.Database, seed_state: dict) -> None:
    """Keep what the ranker learns from (``Ranker.seed_state``) where ``spsbot status`` reads it."""
    value = json.dumps(seed_state, sort_keys=True)
    if get_setting(db, "ranker_seed") != value:
        set_setting(db, "ranker_seed", value)


def scored_hashes(db: sqlite_utils.Database) -> list[tuple[str, str, str | None]]:
    """(item id, content hash, scored hash or None when never scored) for every item, by id."""
    return [tuple(row) for row in db.execute(
        "select items.id, items.content_hash, scores.scored_hash from items "
        "left join scores on scores.item_id = items.id order by items.id").fetchall()]
