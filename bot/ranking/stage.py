"""The rank stage: score the store's new and changed items and write ``scores``.

    counts = rank_items(db, config)   # {"scored", "unchanged", "relevant", "embedded"}

This is where ranking meets the store: the Ranker gets an embedder wrapped by the store's
embedding cache (``CachedEmbedder(embedder, EmbeddingCache(db))``) and a trained-model folder
beside the database, and learns from the curator labels and subscribers' votes stored there.
The maths below it (``scorer``, ``features``, ``passages``…) never sees a database.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import sqlite_utils

from bot.faults import crash_point
from bot.ranking.cached_embedder import CachedEmbedder
from bot.ranking.embedder import profile_embedder
from bot.ranking.records import RecordError, record_for_ranking
from bot.ranking.review import ReviewQueue, decision_threshold
from bot.ranking.selftrain import POOL_MAX
from bot.ranking.scorer import VOTE_WEIGHT, Ranker, cache_dir, feedback_examples, vote_examples
from bot.ranking.weak import weak_examples
from bot.store import db_file, get_item
from bot.store.ranking import (FEEDBACK_LABELS, EmbeddingCache, items_by_id, load_feedback, mesh_indexed_items,
                               recent_items, record_model_files, record_seed_state, save_feedback, save_scores,
                               scored_hashes, stored_decisions, unjudged_scored_items)
from bot.store.subscribers import vote_counts

log = logging.getLogger(__name__)

RANK_BATCH = 50   # items scored per saved batch (see rank_items)


def models_dir(db: sqlite_utils.Database) -> Path:
    """Where this store's trained models are cached (``scorer.cache_dir``: beside the database)."""
    return cache_dir(db_file(db)) / "models"


def store_ranker(db: sqlite_utils.Database, config, embedder, *, seed: list[dict] | None = None,
                 feedback: list[dict] | None = None, weak: list[dict] | None = None,
                 unlabelled: list[dict] | None = None) -> Ranker:
    """A Ranker whose embeddings are cached in this store and trained models beside it."""
    return Ranker(config, CachedEmbedder(embedder, EmbeddingCache(db)), models_dir=models_dir(db),
                  seed=seed, feedback=feedback, weak=weak, unlabelled=unlabelled)


def training_feedback(db: sqlite_utils.Database, vote_weight: float) -> list[dict]:
    """Everything the store says about relevance, as weighted labelled examples for the ranker:
    curator labels (``feedback``: ``spsbot label`` or a curator's click in a digest) at full weight
    (``FEEDBACK_WEIGHT``), and subscribers' votes (``votes``) at ``vote_weight`` per net vote,
    only for items no curator judged. Each example: the item's ranking record plus ``relevant``
    and/or ``themes``, ``weight`` and ``source`` ("curator" or "votes")."""
    feedback = load_feedback(db)
    votes = vote_counts(db)
    judged = items_by_id(db, sorted({f["item_id"] for f in feedback} | set(votes)))
    records = {i: record_for_ranking(r) for i, r in judged.items()}
    curated = feedback_examples(feedback, records)
    decided = {ex["id"] for ex in curated if "relevant" in ex}
    return curated + vote_examples(votes, records, vote_weight, decided)


def make_ranker(db: sqlite_utils.Database, config, embedder=None) -> Ranker:
    """The ranker for this store: the profile's seed set plus the feedback stored here (curator
    labels, and subscribers' votes at ``[ranking] vote_weight``)."""
    embedder = embedder or profile_embedder(config)
    vote_weight = config.ranking.get("vote_weight")
    examples = training_feedback(db, VOTE_WEIGHT if vote_weight is None else float(vote_weight))
    weak = weak_examples(mesh_indexed_items(db), config)  # NLM's MeSH indexing: a check where no human seed is
    pool = [record_for_ranking(r) for r in recent_items(db, POOL_MAX)]  # self-training for unlabelled themes
    return store_ranker(db, config, embedder, feedback=examples, weak=weak, unlabelled=pool)


def store_judgements(db: sqlite_utils.Database, config, rows: list[tuple[int, str, str, str | None]], *,
                     remove: bool = False) -> int:
    """Store (or with ``remove`` forget) curator judgements given as (line number or 0, item id,
    label, theme or None), e.g. from ``records.read_labels``; the ranker learns from them at the
    next rank. Every row is checked first (theme configured, label known, item stored): one bad
    row raises ``RecordError`` naming its line and nothing is stored. Returns how many."""
    themes = set(config.theme_names)
    for number, item_id, verdict, theme_name in rows:
        where = f"line {number}: " if number else ""
        if theme_name and theme_name not in themes:
            raise RecordError(f"{where}unknown theme {theme_name!r} (themes: {', '.join(sorted(themes))})")
        if verdict not in FEEDBACK_LABELS:
            raise RecordError(f"{where}label must be relevant or irrelevant, got {verdict!r}")
        if get_item(db, item_id) is None:
            raise RecordError(f"{where}no item {item_id!r} in the database")
    for _, item_id, verdict, theme_name in rows:
        save_feedback(db, item_id, verdict, theme_name, remove=remove)
    return len(rows)


def review_candidates(db: sqlite_utils.Database) -> list[dict]:
    """Scored items no judgement covers yet (for relevance), as ranker records plus their stored
    ``relevance`` and ``relevant`` (and journal, date, link to show): what ``spsbot label
    --review`` may ask about."""
    return [{**record_for_ranking(row), "relevance": row["_relevance"] or 0.0, "relevant": bool(row["_relevant"]),
             "journal": row.get("journal"), "pub_date": row.get("pub_date"), "url": row.get("url")}
            for row in unjudged_scored_items(db)]


def review_queue(db: sqlite_utils.Database, config) -> tuple[ReviewQueue, dict[str, dict]] | None:
    """What ``spsbot label --review`` asks about: the queue of unjudged scored items (uncertainty
    sampling, ``bot.ranking.review``) and their records by id; None when there is nothing to ask.
    The document vectors come from the embedding cache: after a rank no model is loaded."""
    candidates = review_candidates(db)
    if not candidates:
        return None
    prepared = make_ranker(db, config).prepare(candidates)
    judged = [f["label"] == "relevant" for f in load_feedback(db) if not f.get("theme")]
    scores = [c["relevance"] for c in candidates]
    queue = ReviewQueue([c["id"] for c in candidates], scores, np.stack([p.doc_vector for p in prepared]),
                        decision_threshold(scores, [c["relevant"] for c in candidates]),
                        known=(sum(judged), len(judged) - sum(judged)))
    return queue, {c["id"]: c for c in candidates}


def rank_items(db: sqlite_utils.Database, config, *, progress: bool = False, force: bool = False,
               embedder=None) -> dict:
    """Score every item whose content (or the ranker: version, model, seed, feedback, config)
    changed since it was last scored; write ``scores``. With nothing to do, no model is loaded.

    Returns {"scored": n, "unchanged": n, "relevant": n, "embedded": texts embedded now}.
    """
    ranker = make_ranker(db, config, embedder)
    state = ranker.fingerprint()[:12]
    rows = scored_hashes(db)
    todo = [item_id for item_id, chash, scored in rows if force or scored != f"{chash}:{state}"]
    counts = {"scored": 0, "unchanged": len(rows) - len(todo), "relevant": 0, "embedded": 0}
    if todo:
        counts.update(_score(db, ranker, state, todo, progress))
        log.info("ranked %d items (%d relevant), %d unchanged, %d texts embedded",
                 counts["scored"], counts["relevant"], counts["unchanged"], counts["embedded"])
    # After scoring: a profile without a seed states how its stored decisions fare on the weak labels.
    seeded = ranker.seed_fit or ranker.seed
    decided = None if seeded else stored_decisions(db, [ex["id"] for ex in ranker.weak])
    record_seed_state(db, ranker.seed_state(decided))
    return counts


def _score(db: sqlite_utils.Database, ranker: Ranker, state: str, todo: list[str], progress: bool) -> dict:
    """Score ``todo`` (item ids) and save their scores under ``state``; the counts of ``rank_items``."""
    items = items_by_id(db, todo)
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
    counts = {"scored": len(results), "relevant": sum(r["relevant"] for r in results),
              "embedded": getattr(ranker.embedder, "encoded", 0) - before}
    record_model_files(db, state, getattr(ranker.embedder, "model_files", None))
    return counts
