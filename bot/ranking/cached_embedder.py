"""An embedder that asks a cache first: ``CachedEmbedder(embedder, EmbeddingCache(db))``.

The ranker and search embed the same texts week after week; vectors are cached by the store
(``bot.store.ranking.EmbeddingCache``: keyed by sha256 of the text and the vector space), so an
unchanged text is never embedded twice, whoever asks. This wrapper is the only code that knows
about the cache: the ranking maths (scorer, features, passages) sees an embedder and nothing else.

The cache is anything with ``get_many(texts, space) -> {text: vector}`` and
``put_many({text: vector}, space)``; with no cache (``spsbot score``: no store) each call still
embeds a text repeated in it only once. The embedder is asked — and so the model loaded — only
when some text is missing.
"""

from __future__ import annotations

import json
import logging

import numpy as np

log = logging.getLogger(__name__)


def passage_key(sentences: list[str]) -> str:
    """What a passage's sentence vectors are cached under: its sentences, in order (a sentence's
    vector depends on the whole passage, so the passage is the unit)."""
    return json.dumps(list(sentences), ensure_ascii=False)


class CachedEmbedder:
    """``encode`` and ``encode_passages`` of ``embedder``, looked up in ``cache`` first and the
    misses stored there (texts under the embedder's ``text_space``, passages under its
    ``passage_space``). Every other attribute (``model_name``, ``passage_space``, ``encoded``,
    ``model_files``…) is the wrapped embedder's. ``hits`` and ``misses`` count the unique texts
    (or passages) found in the cache and embedded now."""

    def __init__(self, embedder, cache=None):
        self.embedder = embedder
        self.cache = cache
        self.hits = 0
        self.misses = 0

    def __getattr__(self, name):
        if name in ("embedder", "cache"):  # not set yet (copy, unpickling): never recurse
            raise AttributeError(name)
        return getattr(self.embedder, name)

    def _lookup(self, keys, space: str) -> dict[str, np.ndarray]:
        return self.cache.get_many(keys, space) if self.cache is not None else {}

    def encode(self, texts: list[str]) -> np.ndarray:
        """Vectors for ``texts`` (shape (n, d); (0, 0) for none), embedding only texts not cached."""
        unique = list(dict.fromkeys(texts))
        known = self._lookup(unique, self.embedder.text_space)
        missing = [t for t in unique if t not in known]
        self.hits += len(unique) - len(missing)
        if missing:
            log.info("embedding %d new texts with %s", len(missing), self.embedder.text_space)
            new = dict(zip(missing, self.embedder.encode(missing)))
            if self.cache is not None:
                self.cache.put_many(new, self.embedder.text_space)
            self.misses += len(missing)
            known.update(new)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([known[t] for t in texts]).astype(np.float32)

    def encode_passages(self, passages: list[list[str]], *, embed: bool = True) -> list[np.ndarray | None]:
        """Sentence vectors for each passage (a record's sentences), embedding only passages not
        cached; with ``embed=False`` a passage not in the cache is None (nothing is embedded).

        Under the "sentences" method the cache is per sentence (``encode``); under "passage" one
        row per passage holds all its sentence vectors, keyed by ``passage_key`` and the
        embedder's ``passage_space`` (model + method + window).
        """
        if self.embedder.embedding == "sentences":
            return self._sentences(passages, embed)
        space = self.embedder.passage_space
        keys = [passage_key(p) for p in passages]
        known = {key: flat.reshape(len(json.loads(key)) or 1, -1)
                 for key, flat in self._lookup(set(keys), space).items()}
        missing = list(dict.fromkeys(k for k in keys if k not in known))
        self.hits += len(set(keys)) - len(missing)
        if missing and embed:
            log.info("embedding %d new passages with %s", len(missing), space)
            new = dict(zip(missing, self.embedder.encode_passages([json.loads(k) for k in missing])))
            if self.cache is not None:
                self.cache.put_many(new, space)
            self.misses += len(missing)
            known.update(new)
        return [known.get(k) for k in keys]

    def _sentences(self, passages: list[list[str]], embed: bool) -> list[np.ndarray | None]:
        flat = list(dict.fromkeys(s for p in passages for s in p))
        if embed:
            known = dict(zip(flat, self.encode(flat))) if flat else {}
        else:
            known = self._lookup(flat, self.embedder.text_space)
            self.hits += len(known)
        return [np.stack([known[s] for s in p]).astype(np.float32) if p and all(s in known for s in p) else None
                for p in passages]
