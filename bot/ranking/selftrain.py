"""Self-training for themes nobody labelled: the store's own records, read by the pooled theme
reader (``transfer.py``), become soft labels for a model of each theme's own.

The pooled reader only weighs the columns that mean the same for every theme. The store holds
many records of the topic: read by the reader, each is a positive of a theme with the reader's
probability p and a negative with 1 - p (soft labels: no confidence cut to choose). Per theme, a
model on *all* its columns (each of its phrases on its own) and on the records' words (TF-IDF),
fitted to those soft labels, learns what the reader's confident records share for this topic —
"pyridostigmine" beside "acetylcholinesterase inhibitor" — and reads every record with it.

Only with at least as many stored records as the reader itself learnt from (the bundled seed's
labelled records): fewer, and the reader alone reads the themes. The models are part of the
trained model, cached by the ranker's fingerprint, which holds the pool's content hashes: they
are rebuilt as the store grows. Measured: bench/cross_disease.py ("mg, store").
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from bot.ranking import features as F
from bot.ranking.transfer import generic_rows

POOL_MAX = 2000   # stored records self-trained on, the most recent: bounds the cost of a rank on a large store


@dataclass
class ThemeModel:
    """One theme's self-trained pair (feature model on ``columns``; word model) and the shared vectorizer."""

    features: object
    words: object
    columns: np.ndarray

    def predict(self, X: np.ndarray, T) -> np.ndarray:
        return (self.features.predict_proba(X[:, self.columns])[:, 1] + self.words.predict_proba(T)[:, 1]) / 2


def _soft_fit(X: np.ndarray, T, p: np.ndarray):
    """Logistic regressions fitted to soft labels: each row once as a positive weighing ``p``,
    once as a negative weighing ``1 - p`` (the expected log-loss under the reader's beliefs)."""
    from scipy import sparse
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bot.ranking.model import FEATURE_C, TFIDF_C
    y = np.concatenate([np.ones(len(p)), np.zeros(len(p))])
    w = np.concatenate([p, 1 - p])
    features = make_pipeline(StandardScaler(), LogisticRegression(C=FEATURE_C, max_iter=2000))
    words = LogisticRegression(C=TFIDF_C, max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        features.fit(np.vstack([X, X]), y, logisticregression__sample_weight=w)
        words.fit(sparse.vstack([T, T]).tocsr(), y, sample_weight=w)
    return features, words


def fit_themes(X: np.ndarray, texts: list[str], targets: list[F.Target], names: list[str], reader):
    """{theme: ThemeModel} for ``names``, fitted on the pool's rows ``X`` (and ``texts``) to the
    soft labels ``reader`` gives them, and the TF-IDF vectorizer their word models read."""
    from bot.ranking.model import make_vectorizer
    layout = F.column_layout(targets)
    vectorizer = make_vectorizer()
    T = vectorizer.fit_transform(texts)
    models = {}
    for name in names:
        p = reader.predict_proba(generic_rows(X, layout, name))[:, 1]
        columns = np.concatenate([layout[name], layout[F.SHARED]])
        features, words = _soft_fit(X[:, columns], T, p)
        models[name] = ThemeModel(features, words, columns)
    return models, vectorizer


def predict(models: dict, vectorizer, X: np.ndarray, texts: list[str]) -> dict[str, np.ndarray]:
    """Each self-trained theme's probabilities for rows ``X`` (and their ``texts``)."""
    if not models:
        return {}
    T = vectorizer.transform(texts)
    return {name: model.predict(X, T) for name, model in models.items()}
