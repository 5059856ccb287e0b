"""The bundled seed: what the ranker learns from for the SPS profile, shipped as derived numbers.

The labelled dev set it comes from may not be republished (its abstracts belong to their
publishers), so the package ships no titles, abstracts or sentences, only what training reads:

- ``X``: the hand-feature matrix (float32), computed by ``features.feature_matrix`` for the
  bundled profile's targets under the packaged embedding model;
- ``T``: the TF-IDF rows of the same records (CSR parts) with the fitted vectorizer's
  ``vocabulary`` (1–2-grams seen in at least two records, in column order) and ``idf``;
- the labels: per target (relevance, then each theme) a 0/1 row and a mask of labelled rows;
- ``fingerprint``: a hash of everything ``X`` depends on (ranker version, model, embedding budget,
  the targets built from the configuration); a configuration whose fingerprint differs cannot use it.

No ids either: rows are in the dev set's order, which is all the tests need.
``bench/ranking_seed.py`` builds it; ``scorer.Ranker`` reads it.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np
from scipy import sparse

BUNDLE_NAME = "sps_seed.npz"
SIDECAR_NAME = "sps_seed.json"


def bundle_names(model: str = "") -> tuple[str, str]:
    """(bundle, sidecar) file names for the vectors ``model`` names: int8 vectors
    (``embedder.INT8_SUFFIX`` in the space) have their own bundle, "sps_seed.int8.npz"."""
    if "#int8" in model:
        return "sps_seed.int8.npz", "sps_seed.int8.json"
    return BUNDLE_NAME, SIDECAR_NAME


@dataclass
class SeedBundle:
    """The derived seed: features, TF-IDF rows and vocabulary, labels, and what they depend on."""

    X: np.ndarray
    T: sparse.csr_matrix
    vocabulary: list[str]
    idf: np.ndarray
    labels: dict[str, tuple[np.ndarray, np.ndarray]]   # target -> (y 0/1, mask)
    fingerprint: str
    model: str
    digest: str = ""   # sha256 of the file it was read from (part of the trained model's cache key)

    @property
    def n(self) -> int:
        return int(self.X.shape[0])


def save_bundle(path, bundle: SeedBundle) -> None:
    """Write ``bundle`` as a plain-array npz (no pickles: ``allow_pickle=False`` reads it)."""
    names = list(bundle.labels)
    T = sparse.csr_matrix(bundle.T)
    np.savez_compressed(
        path, X=bundle.X.astype(np.float32),
        T_data=T.data.astype(np.float32), T_indices=T.indices.astype(np.int32),
        T_indptr=T.indptr.astype(np.int32), T_shape=np.asarray(T.shape, dtype=np.int64),
        vocabulary=np.asarray(bundle.vocabulary, dtype=str), idf=np.asarray(bundle.idf, dtype=np.float64),
        label_names=np.asarray(names, dtype=str),
        y=np.stack([bundle.labels[n][0] for n in names]).astype(np.int8),
        mask=np.stack([bundle.labels[n][1] for n in names]).astype(bool),
        fingerprint=np.asarray(bundle.fingerprint), model=np.asarray(bundle.model))


def read_bundle(data: bytes) -> SeedBundle:
    """A bundle from the bytes of its npz file."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        T = sparse.csr_matrix((z["T_data"].astype(np.float64), z["T_indices"], z["T_indptr"]),
                              shape=tuple(int(s) for s in z["T_shape"]))
        names = [str(n) for n in z["label_names"]]
        labels = {name: (z["y"][i].astype(int), z["mask"][i].astype(bool)) for i, name in enumerate(names)}
        return SeedBundle(X=z["X"].astype(np.float32), T=T, vocabulary=[str(v) for v in z["vocabulary"]],
                          idf=z["idf"].astype(np.float64), labels=labels, fingerprint=str(z["fingerprint"]),
                          model=str(z["model"]), digest=hashlib.sha256(data).hexdigest())


def bundled_seed(model: str = "") -> SeedBundle | None:
    """The bundle shipped in ``bot/profiles`` for the vectors ``model`` names (an embedder's
    ``passage_space``; "" = the float32 one), None if the package has none."""
    path = resources.files("bot.profiles").joinpath(bundle_names(model)[0])
    if not path.is_file():
        return None
    return read_bundle(path.read_bytes())


def sidecar(bundle: SeedBundle, source: str) -> str:
    """A human-readable summary of the bundle (JSON), shipped next to it."""
    counts = {name: {"labelled": int(mask.sum()), "positive": int(y[mask].sum())}
              for name, (y, mask) in bundle.labels.items()}
    return json.dumps({"what": "derived ranker seed for the bundled SPS profile (no texts)",
                       "source": source, "records": bundle.n, "features": int(bundle.X.shape[1]),
                       "tfidf_terms": len(bundle.vocabulary), "model": bundle.model,
                       "fingerprint": bundle.fingerprint, "labels": counts}, indent=2) + "\n"
