"""Hybrid search with the real packaged model (all-MiniLM-L6-v2 via bot.ranking.embedder).

One small store (20 real records) keeps this to one model load and ~150 sentences.
"""

from __future__ import annotations

import pytest

from bot.search.hybrid import search
from searchkit import dev_records, seed_store


def _has(record, word):
    return word in (record["title"] + " " + (record.get("text") or "")).lower()


@pytest.fixture(scope="module")
def small_store(tmp_path_factory, real_embedder):
    from bot.store import open_db
    records = dev_records()
    chosen = ([r for r in records if _has(r, "intrathecal baclofen")][:4]
              + [r for r in records if _has(r, "rituximab") and not _has(r, "baclofen")][:4]
              + [r for r in records if _has(r, "efgartigimod")][:2]
              + [r for r in records if r["kind"] == "trial" and not _has(r, "baclofen")][:4]
              + [r for r in records if r.get("group") == "negative" and not _has(r, "baclofen")][:6])
    db = open_db(tmp_path_factory.mktemp("semantic") / "store.db")
    seed_store(db, chosen)
    yield db, real_embedder
    db.close()


def test_hybrid_finds_a_paraphrase_that_words_alone_miss(small_store):
    db, embedder = small_store
    query = "drug pump delivering medication into the spinal fluid"
    assert search(db, query, semantic=False).hits == []  # no record has all these words
    hits = search(db, query, embedder=embedder, limit=3).hits
    assert hits, "hybrid search found nothing"
    assert all(h["fts_rank"] is None for h in hits)
    top = hits[0]["title"].lower()
    assert "intrathecal" in top and "baclofen" in top
    assert sum("baclofen" in h["title"].lower() for h in hits) >= 2


def test_drug_name_query_keeps_the_exact_matches_on_top(small_store):
    db, embedder = small_store
    words_only = [h["id"] for h in search(db, "efgartigimod", semantic=False).hits]
    hybrid = search(db, "efgartigimod", embedder=embedder, limit=5).hits
    assert words_only
    assert {h["id"] for h in hybrid[:len(words_only)]} == set(words_only)
    assert embedder.model_name == "all-MiniLM-L6-v2"
