"""A theme reader for themes nobody has labelled: learnt from the bundled SPS seed's labelled
themes, but only how a theme's *generic* features map to "the record addresses this theme".

Every target's first ``features.GENERIC`` columns mean the same whatever the theme (best and
best-two sentence similarity to its phrases, title and whole-record similarity, how often and how
many of its terms occur, in the title, its exclude terms), and the shared columns (publication
type, cohort size) are the same for every profile. One logistic regression pooled over the six
bundled themes learns how to weigh those — how close a sentence must be, how much a named drug
counts, that a cohort names many patients — and reads any profile's themes with it. It learns no
SPS word or phrase, so a myasthenia gravis theme is read by its own phrases and terms. (Measured:
bench/cross_disease.py; an SPS theme that lost its seed is read the same way.)
"""

from __future__ import annotations

import functools

import numpy as np

from bot.ranking import features as F


def generic_rows(X: np.ndarray, layout: dict, name: str) -> np.ndarray:
    """The columns of ``X`` that mean the same for any target: ``name``'s generic ones, then the shared ones."""
    return np.hstack([X[:, layout[name][:F.GENERIC]], X[:, layout[F.SHARED]]])


@functools.lru_cache(maxsize=4)
def theme_reader(model_name: str):
    """The pooled theme model (a scikit-learn pipeline: ``predict_proba`` on ``generic_rows``),
    or None when the bundled seed is missing, stale, or computed under another embedding model
    (its similarities would not mean the same)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bot.config import load_config
    from bot.ranking.model import FEATURE_C
    from bot.ranking.scorer import targets_fingerprint
    from bot.ranking.seed import bundled_seed
    bundle = bundled_seed()
    if bundle is None or bundle.model != model_name:
        return None
    targets = F.build_targets(load_config(None, env={}))
    if bundle.fingerprint != targets_fingerprint(targets, bundle.model):
        return None
    layout = F.column_layout(targets)
    rows, labels = [], []
    for target in targets[1:]:
        y, mask = bundle.labels[target.name]
        rows.append(generic_rows(bundle.X, layout, target.name)[mask])
        labels.append(y[mask])
    reader = make_pipeline(StandardScaler(), LogisticRegression(C=FEATURE_C, max_iter=2000))
    return reader.fit(np.vstack(rows), np.concatenate(labels))
