"""The supervised layer: per target, two logistic regressions (hybrid features; TF-IDF words)
whose probabilities are averaged, and a decision threshold chosen on out-of-fold predictions.

Trained on labelled examples (the profile's seed set plus curator feedback, which counts more);
small enough to train in a second or two, so it is retrained whenever its inputs change and
cached by their hash.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

log = logging.getLogger(__name__)

# Regularisation, fixed by cross-validation on the SPS seed set (bench/ranking.py).
FEATURE_C = 0.05
TFIDF_C = 4.0
THRESHOLD_FOLDS = 5
MIN_CLASS_EXAMPLES = 3   # fewer positives (or negatives) than this: no model for that target


@dataclass
class TargetModel:
    """One target's two classifiers and its data-chosen threshold. ``columns``: the feature
    columns its feature model reads (None = all), e.g. only those of seed-valid targets."""

    features: object
    words: object
    threshold: float
    n_train: int
    n_pos: int
    columns: np.ndarray | None = None

    def predict(self, X: np.ndarray, T) -> np.ndarray:
        columns = getattr(self, "columns", None)
        X = X if columns is None else X[:, columns]
        return (self.features.predict_proba(X)[:, 1] + self.words.predict_proba(T)[:, 1]) / 2


@dataclass
class TrainedModel:
    """Models by target name ("relevance", then themes); a target may be absent (too few labels).
    ``vectorizer`` turns texts into the TF-IDF rows every target's word model reads."""

    targets: dict[str, TargetModel] = field(default_factory=dict)
    vectorizer: object = None
    self_trained: tuple | None = None   # unlabelled themes' (models, vectorizer) from the store (``selftrain``)

    def predict(self, X: np.ndarray, texts: list[str]) -> dict[str, np.ndarray]:
        if not self.targets:
            return {}
        T = self.vectorizer.transform(texts)
        return {name: m.predict(X, T) for name, m in self.targets.items()}


def make_vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, strip_accents="unicode")


def _fit_pair(X, T, y, w):
    features = make_pipeline(StandardScaler(), LogisticRegression(C=FEATURE_C, max_iter=2000))
    words = LogisticRegression(C=TFIDF_C, max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        features.fit(X, y, logisticregression__sample_weight=w)
        words.fit(T, y, sample_weight=w)
    return features, words


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability cut maximising F1 (midway between the two scores it separates)."""
    order = np.argsort(-p)
    p_sorted, y_sorted = p[order], y[order]
    tp = np.cumsum(y_sorted)                 # predicting the top k+1 as positive
    k = np.arange(1, len(p) + 1)
    f1 = 2 * tp / (k + y.sum())
    # Only cut where the score changes (ties fall on the same side).
    valid = np.append(p_sorted[:-1] > p_sorted[1:], True)
    best = int(np.argmax(np.where(valid, f1, -1)))
    if best == len(p) - 1:
        return float(p_sorted[-1])
    return float((p_sorted[best] + p_sorted[best + 1]) / 2)


def train_target(X: np.ndarray, T, y: np.ndarray, w: np.ndarray, seed: int = 0) -> TargetModel | None:
    """Fit one target; its threshold comes from out-of-fold predictions on the same data."""
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if min(n_pos, n_neg) < MIN_CLASS_EXAMPLES:
        return None
    folds = min(THRESHOLD_FOLDS, n_pos, n_neg)
    oof = np.zeros(len(y))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(X, y):
        f, wd = _fit_pair(X[train], T[train], y[train], w[train])
        oof[test] = (f.predict_proba(X[test])[:, 1] + wd.predict_proba(T[test])[:, 1]) / 2
    features, words = _fit_pair(X, T, y, w)
    return TargetModel(features, words, best_f1_threshold(y, oof), len(y), n_pos)


def vectorizer_from(vocabulary: list[str], idf: np.ndarray) -> TfidfVectorizer:
    """A fitted vectorizer rebuilt from its vocabulary (terms in column order) and idf weights,
    e.g. the bundled seed's: texts it transforms get the columns the seed's TF-IDF rows have."""
    vectorizer = make_vectorizer()
    vectorizer.vocabulary_ = {term: i for i, term in enumerate(vocabulary)}
    vectorizer.idf_ = np.asarray(idf, dtype=np.float64)
    return vectorizer


def train(X: np.ndarray, texts: list[str], labels: dict[str, tuple[np.ndarray, np.ndarray]],
          weights: np.ndarray) -> TrainedModel:
    """``labels``: target -> (y 0/1, mask of rows labelled for that target).

    The TF-IDF vocabulary is fitted once on all training texts (it sees no labels) and shared.
    """
    vectorizer = make_vectorizer()
    try:
        T = vectorizer.fit_transform(texts)
    except ValueError:  # too few texts for min_df: no word model, similarity and terms only
        return TrainedModel()
    return train_matrices(X, T, vectorizer, labels, weights)


def train_matrices(X: np.ndarray, T, vectorizer, labels: dict[str, tuple[np.ndarray, np.ndarray]],
                   weights: np.ndarray, columns: dict[str, np.ndarray] | None = None) -> TrainedModel:
    """Like ``train``, from TF-IDF rows ``T`` already made by the fitted ``vectorizer``
    (the bundled seed ships its rows and vocabulary, not its texts). ``columns``: per target, the
    feature columns its model may read (default all)."""
    model = TrainedModel(vectorizer=vectorizer)
    for name, (y, mask) in labels.items():
        rows = np.flatnonzero(mask)
        cols = (columns or {}).get(name)
        X_target = X[rows] if cols is None else X[np.ix_(rows, cols)]
        fitted = train_target(X_target, T[rows], y[rows].astype(int), weights[rows])
        if fitted is None:
            log.info("too few labelled examples for %s: unsupervised score", name)
            continue
        fitted.columns = cols
        model.targets[name] = fitted
    return model
