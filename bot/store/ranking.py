"""Ranking's tables: the embedding cache, scores, curator feedback (and subscribers' votes as
training examples) — and ``rank_items``.

Embeddings are keyed by (sha256 of the exact text, model name), so an unchanged text is never
embedded twice, whoever asks (the ranker, search). Scores remember what they were computed from
(``scored_hash`` = item content hash + ranker state), so ``rank_items`` re-scores only what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Iterable

import numpy as np
import sqlite_utils

from bot.faults import crash_point
from bot.store import loads, now_iso

log = logging.getLogger(__name__)

FEEDBACK_LABELS = ("relevant", "irrelevant")
_SQL_CHUNK = 500  # sqlite's bound-parameter limit is far above this; keeps queries small
RANK_BATCH = 50   # items scored per saved batch (see rank_items)


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
        hashes = list(by_hash)
        for start in range(0, len(hashes), _SQL_CHUNK):
            chunk = hashes[start:start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"select content_hash, vector from embeddings where model = ? and content_hash in ({marks})",
                [model, *chunk]).fetchall()
            for digest, blob in rows:
                found[by_hash[digest]] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, vectors: dict[str, np.ndarray], model: str) -> None:
        """Store vectors by text; a 2-D array (a passage's sentence vectors) is stored as its rows
        one after the other (``dims`` is the width of a row)."""
        now = now_iso()
        rows = [{"content_hash": text_hash(t), "model": model, "dims": int(v.shape[-1]),
                 "vector": np.asarray(v, dtype=np.float32).tobytes(), "created_at": now}
                for t, v in vectors.items()]
        with self.db.atomic():
            self.db["embeddings"].upsert_all(rows, pk=("content_hash", "model"))


def cached_encode(db: sqlite_utils.Database | None, embedder, texts: list[str]) -> np.ndarray:
    """Vectors for ``texts`` (shape (n, d)), embedding only texts not already cached.

    ``db`` may be None (no store: ``spsbot score``). The embedder is only asked — and so the
    model only loaded — when some text is missing from the cache.
    """
    unique = list(dict.fromkeys(texts))
    known: dict[str, np.ndarray] = {}
    cache = EmbeddingCache(db) if db is not None else None
    if cache is not None:
        known.update(cache.get_many(unique, embedder.model_name))
    missing = [t for t in unique if t not in known]
    if missing:
        log.info("embedding %d new texts with %s", len(missing), embedder.model_name)
        new = dict(zip(missing, embedder.encode(missing)))
        if cache is not None:
            cache.put_many(new, embedder.model_name)
        known.update(new)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([known[t] for t in texts]).astype(np.float32)


def passage_key(sentences: list[str]) -> str:
    """What a passage's sentence vectors are cached under: its sentences, in order (a sentence's
    vector depends on the whole passage, so the passage is the unit)."""
    return json.dumps(list(sentences), ensure_ascii=False)


def cached_passages(db: sqlite_utils.Database | None, embedder, passages: list[list[str]], *,
                    embed: bool = True) -> list[np.ndarray | None]:
    """Sentence vectors for each passage (a record's sentences), embedding only passages not
    already cached; with ``embed=False`` a passage not in the cache is None (nothing is embedded).

    Under the "sentences" method the cache is per sentence (``cached_encode``); under "passage"
    one row per passage holds all its sentence vectors, keyed by ``passage_key`` and the
    embedder's ``passage_space`` (model + method + window).
    """
    if embedder.embedding == "sentences":
        return _cached_sentences(db, embedder, passages, embed)
    space = embedder.passage_space
    keys = [passage_key(p) for p in passages]
    cache = EmbeddingCache(db) if db is not None else None
    known: dict[str, np.ndarray] = {}
    if cache is not None:
        for key, flat in cache.get_many(set(keys), space).items():
            rows = len(json.loads(key)) or 1
            known[key] = flat.reshape(rows, -1)
    missing = list(dict.fromkeys(k for k in keys if k not in known))
    if missing and embed:
        log.info("embedding %d new passages with %s", len(missing), space)
        new = dict(zip(missing, embedder.encode_passages([json.loads(k) for k in missing])))
        if cache is not None:
            cache.put_many(new, space)
        known.update(new)
    return [known.get(k) for k in keys]


def _cached_sentences(db, embedder, passages, embed: bool) -> list[np.ndarray | None]:
    flat = list(dict.fromkeys(s for p in passages for s in p))
    if embed:
        known = dict(zip(flat, cached_encode(db, embedder, flat))) if flat else {}
    else:
        known = EmbeddingCache(db).get_many(flat, embedder.model_name) if db is not None else {}
    return [np.stack([known[s] for s in p]).astype(np.float32) if p and all(s in known for s in p) else None
            for p in passages]


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
    subscribers' votes; ``label --review`` through ``review_candidates``."""
    if "feedback" not in db.table_names():
        return []
    return list(db.query("select item_id, label, theme, created_at from feedback order by id"))


def review_candidates(db: sqlite_utils.Database) -> list[dict]:
    """Scored items no judgement covers yet (for relevance), as ranker records plus their stored
    ``relevance`` and ``relevant``: what ``spsbot label --review`` may ask about."""
    judged = {f["item_id"] for f in load_feedback(db) if not f.get("theme")}
    rows = db.execute("select items.*, scores.relevance as _relevance, scores.relevant as _relevant from items "
                      "join scores on scores.item_id = items.id order by items.id")
    names = [c[0] for c in rows.description]
    out = []
    for values in rows.fetchall():
        row = dict(zip(names, values))
        if row["id"] in judged:
            continue
        out.append({**record_for_ranking(row), "relevance": row["_relevance"] or 0.0,
                    "relevant": bool(row["_relevant"]), "journal": row.get("journal"), "pub_date": row.get("pub_date"),
                    "url": row.get("url")})
    return out


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
        rows = (r for start in range(0, len(item_ids), _SQL_CHUNK)
                for r in db["scores"].rows_where(
                    f"item_id in ({','.join('?' * len(item_ids[start:start + _SQL_CHUNK]))})",
                    item_ids[start:start + _SQL_CHUNK]))
    out = {}
    for row in rows:
        row = dict(row)
        for key, default in (("themes", {}), ("labels", []), ("evidence", {})):
            row[key] = loads(row.get(key), default)
        row["relevant"] = bool(row.get("relevant"))
        out[row["item_id"]] = row
    return out


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


# --- ranking the store ----------------------------------------------------------------------

def record_for_ranking(row: dict) -> dict:
    """An ``items`` row as the ranker's input record (title, text, kind, pub_types, mesh, keywords)."""
    text = row.get("abstract") or ""
    extra = loads(row.get("extra"), {}) or {}
    if row.get("kind") == "trial" and extra.get("conditions"):
        # A registration's summary often omits the disease; its conditions list names it.
        text = f"{text}\nConditions: {'; '.join(map(str, extra['conditions']))}.".strip()
    return {"id": row["id"], "kind": row.get("kind"), "title": row.get("title") or "", "text": text,
            "pub_types": loads(row.get("pub_types"), []), "mesh": loads(row.get("mesh"), []),
            "keywords": loads(row.get("keywords"), [])}


def _items(db: sqlite_utils.Database, ids: list[str]) -> dict[str, dict]:
    out = {}
    for start in range(0, len(ids), _SQL_CHUNK):
        chunk = ids[start:start + _SQL_CHUNK]
        for row in db["items"].rows_where(f"id in ({','.join('?' * len(chunk))})", chunk):
            out[row["id"]] = row
    return out


def training_feedback(db: sqlite_utils.Database, vote_weight: float) -> list[dict]:
    """Everything the store says about relevance, as weighted labelled examples for the ranker:
    curator labels (``feedback``: ``spsbot label`` or a curator's click in a digest) at full weight
    (``FEEDBACK_WEIGHT``), and subscribers' votes (``votes``) at ``vote_weight`` per net vote,
    only for items no curator judged. Each example: the item's ranking record plus ``relevant``
    and/or ``themes``, ``weight`` and ``source`` ("curator" or "votes")."""
    from bot.ranking.scorer import feedback_examples, vote_examples
    from bot.store.subscribers import vote_counts

    feedback = load_feedback(db)
    votes = vote_counts(db) if "votes" in db.table_names() else {}
    judged = _items(db, sorted({f["item_id"] for f in feedback} | set(votes)))
    records = {i: record_for_ranking(r) for i, r in judged.items()}
    curated = feedback_examples(feedback, records)
    decided = {ex["id"] for ex in curated if "relevant" in ex}
    return curated + vote_examples(votes, records, vote_weight, decided)


def make_ranker(db: sqlite_utils.Database, config, embedder=None):
    """The ranker for this store: the profile's seed set plus the feedback stored here (curator
    labels, and subscribers' votes at ``[ranking] vote_weight``)."""
    from bot.ranking.embedder import embedder_for
    from bot.ranking.scorer import VOTE_WEIGHT, Ranker

    embedder = embedder or embedder_for(config.ranking)
    vote_weight = config.ranking.get("vote_weight")
    examples = training_feedback(db, VOTE_WEIGHT if vote_weight is None else float(vote_weight))
    return Ranker(config, embedder, db=db, feedback=examples)


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


def _record_seed_state(db: sqlite_utils.Database, seed_state: dict) -> None:
    """Keep what the ranker learns from (``Ranker.seed_state``) where ``spsbot status`` reads it."""
    from bot.store.digests import get_setting, set_setting
    value = json.dumps(seed_state, sort_keys=True)
    if get_setting(db, "ranker_seed") != value:
        set_setting(db, "ranker_seed", value)


def rank_items(db: sqlite_utils.Database, config, *, progress: bool = False, force: bool = False,
               embedder=None) -> dict:
    """Score every item whose content (or the ranker: version, model, seed, feedback, config)
    changed since it was last scored; write ``scores``. With nothing to do, no model is loaded.

    Returns {"scored": n, "unchanged": n, "relevant": n, "embedded": texts embedded now}.
    """
    ranker = make_ranker(db, config, embedder)
    _record_seed_state(db, ranker.seed_state())
    state = ranker.fingerprint()[:12]
    rows = db.execute(
        "select items.id, items.content_hash, scores.scored_hash from items "
        "left join scores on scores.item_id = items.id order by items.id").fetchall()
    todo = [item_id for item_id, chash, scored in rows if force or scored != f"{chash}:{state}"]
    counts = {"scored": 0, "unchanged": len(rows) - len(todo), "relevant": 0, "embedded": 0}
    if not todo:
        return counts
    items = _items(db, todo)
    records = [record_for_ranking(items[i]) for i in todo]
    before = getattr(ranker.embedder, "encoded", 0)
    results = []
    # Scored and saved batch by batch (each its own transaction): a crash keeps the finished
    # batches, and the next run re-scores only the rest (their scored_hash is still stale).
    for start in range(0, len(todo), RANK_BATCH):
        batch_ids = todo[start:start + RANK_BATCH]
        scored = ranker.score(records[start:start + RANK_BATCH], progress=progress)
        save_scores(db, [(i, f"{items[i]['content_hash']}:{state}", r) for i, r in zip(batch_ids, scored)])
        results.extend(scored)
        crash_point("rank:after_batch")
    counts.update(scored=len(results), relevant=sum(r["relevant"] for r in results),
                  embedded=getattr(ranker.embedder, "encoded", 0) - before)
    record_model_files(db, state, getattr(ranker.embedder, "model_files", None))
    log.info("ranked %d items (%d relevant), %d unchanged, %d texts embedded",
             counts["scored"], counts["relevant"], counts["unchanged"], counts["embedded"])
    return counts
