"""``CachedEmbedder``: the embedder the rank stage and search hand the ranking maths, with the
store's embedding cache in front of it (fake embedder; the store is a real SQLite file)."""

from __future__ import annotations

import numpy as np
from conftest import FakeEmbedder

from bot.ranking.cached_embedder import CachedEmbedder
from bot.ranking.stage import make_ranker, store_ranker
from bot.store.ranking import EmbeddingCache


def test_hits_and_misses_are_counted_and_only_misses_reach_the_embedder(db):
    fake = FakeEmbedder()
    cached = CachedEmbedder(fake, EmbeddingCache(db))
    first = cached.encode(["alpha", "beta", "alpha"])
    assert (cached.hits, cached.misses, fake.batches) == (0, 2, [2])
    again = cached.encode(["beta", "gamma"])
    assert (cached.hits, cached.misses, fake.batches) == (1, 3, [2, 1])  # only "gamma" was embedded
    assert np.array_equal(again[0], first[1])
    other = CachedEmbedder(FakeEmbedder(), EmbeddingCache(db))  # another process, the same store
    other.encode(["alpha", "beta", "gamma"])
    assert (other.hits, other.misses, other.embedder.calls) == (3, 0, 0)


def test_passages_hit_the_cache_and_embed_false_never_embeds(db):
    passages = [["Title", "One sentence."], ["Other title", "Two.", "Three."]]
    fake = FakeEmbedder()
    cached = CachedEmbedder(fake, EmbeddingCache(db))
    assert cached.encode_passages(passages[:1], embed=False) == [None]
    assert (cached.hits, cached.misses, fake.calls) == (0, 0, 0)
    vectors = cached.encode_passages(passages)
    assert [v.shape for v in vectors] == [(2, 64), (3, 64)] and cached.misses == 2
    looked_up = CachedEmbedder(FakeEmbedder(), EmbeddingCache(db)).encode_passages(passages, embed=False)
    assert all(np.array_equal(a, b) for a, b in zip(vectors, looked_up))


def test_without_a_cache_a_repeated_text_is_still_embedded_once():
    fake = FakeEmbedder()
    cached = CachedEmbedder(fake)
    assert cached.encode(["x y", "x y", "z"]).shape == (3, 64) and fake.batches == [2]
    assert cached.encode(["x y"]).shape == (1, 64) and fake.batches == [2, 1]  # nothing kept between calls
    assert cached.encode([]).shape == (0, 0)


def test_the_wrapper_answers_for_the_embedder(db):
    fake = FakeEmbedder(model_name="some-model")
    cached = CachedEmbedder(fake, EmbeddingCache(db))
    assert (cached.model_name, cached.passage_space, cached.embedding) == (
        "some-model", fake.passage_space, "passage")
    cached.encode(["a b c"])
    assert cached.encoded == fake.encoded == 1  # what rank_items reports as "embedded"


def test_the_store_ranker_gets_a_cached_embedder_and_a_model_folder_beside_the_store(db, tmp_path, monkeypatch):
    from bot.config import load_config
    monkeypatch.delenv("SPSBOT_CACHE_DIR")
    ranker = store_ranker(db, load_config(), FakeEmbedder(), seed=[])
    assert isinstance(ranker.embedder, CachedEmbedder) and ranker.embedder.cache.db is db
    assert ranker.models_dir == tmp_path / "cache" / "models"  # the `db` fixture's file is tmp_path/test.db
    assert isinstance(make_ranker(db, load_config(), FakeEmbedder()).embedder, CachedEmbedder)
