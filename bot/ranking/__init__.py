"""Ranking: relevance to the topic, a score per theme, and the sentence that explains each.

Modules (import what you need; none imports the model library at import time):
- ``embedder``: ``profile_embedder(config) -> Embedder`` (``.model_name``, ``.encode(texts)``,
  ``.encode_passages(records' sentences)``, ``.passage_space``), the packaged all-MiniLM-L6-v2 by
  default, loaded offline on first use.
- ``passages``: one model pass per record, sentence vectors pooled from their token spans.
- ``text``: verbatim sentence splitting, term patterns, publication-type buckets.
- ``features``: hybrid features (sentence similarity to the topic/theme phrases, terms, types).
- ``model``: the supervised layer (scikit-learn) and data-chosen thresholds.
- ``seed``: the bundled SPS seed as derived numbers (feature rows, TF-IDF rows and vocabulary,
  labels, fingerprint; no texts), built by ``bench/ranking_seed.py``.
- ``transfer``, ``weak``, ``selftrain``: a profile with no labels — themes read by a reader pooled over
  the bundled seed's themes, relevance checked against NLM's MeSH indexing, themes self-trained on the store.
- ``cached_embedder``: ``CachedEmbedder(embedder, cache)``, an embedder that asks a cache first.
- ``scorer``: ``Ranker(config, embedder).score(records)`` — the whole thing, no database.
- ``records``: the ranker's input records (``read_records`` for ``spsbot score``'s files,
  ``record_for_ranking`` for an item, ``read_labels`` for a curator's label file).
- ``stage``: the rank stage (``rank_items(db, config)``, ``make_ranker``): the Ranker on the
  store's embedding cache and feedback.
The store side (embedding cache table, scores, feedback) is ``bot.store.ranking``.
"""
