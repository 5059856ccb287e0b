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


def fit_reader(rows: list[np.ndarray], labels: list[np.ndarray]):
    """One logistic regression on the generic rows of several labelled themes, pooled."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bot.ranking.model import FEATURE_C
    reader = make_pipeline(StandardScaler(), LogisticRegression(C=FEATURE_C, max_iter=2000))
    return reader.fit(np.vstack(rows), np.concatenate(labels))


@functools.lru_cache(maxsize=4)
def bundled_themes(model_name: str) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """The bundled seed's labelled themes as {theme: (generic rows, 0/1 labels)}, or None when
    the seed is missing, stale, or computed under another embedding model (its similarities
    would not mean the same)."""
    from bot.config import load_config
    from bot.ranking.scorer import targets_fingerprint
    from bot.ranking.seed import bundled_seed
    bundle = bundled_seed(model_name)  # the bundle of these vectors (int8 has its own)
    if bundle is None or bundle.model != model_name:
        return None
    targets = F.build_targets(load_config(None, env={}))
    if bundle.fingerprint != targets_fingerprint(targets, bundle.model):
        return None
    layout = F.column_layout(targets)
    out = {}
    for target in targets[1:]:
        y, mask = bundle.labels[target.name]
        out[target.name] = (generic_rows(bundle.X, layout, target.name)[mask], y[mask])
    return out


@functools.lru_cache(maxsize=4)
def theme_reader(model_name: str):
    """The pooled theme model (a scikit-learn pipeline: ``predict_proba`` on ``generic_rows``), or None."""
    themes = bundled_themes(model_name)
    if not themes:
        return None
    return fit_reader([rows for rows, _ in themes.values()], [y for _, y in themes.values()])


@functools.lru_cache(maxsize=4)
def reader_estimate(model_name: str) -> dict | None:
    """What to expect of the reader on a theme it has never seen: for each bundled theme, the
    average precision of a reader trained on the *other* themes only (leave one theme out), with
    the number of labelled records. None without the bundled seed."""
    from sklearn.metrics import average_precision_score
    themes = bundled_themes(model_name)
    if not themes:
        return None
    ap = {}
    for name, (rows, y) in themes.items():
        others = [t for t in themes if t != name]
        reader = fit_reader([themes[t][0] for t in others], [themes[t][1] for t in others])
        ap[name] = float(average_precision_score(y, reader.predict_proba(rows)[:, 1]))
    return {"theme_ap": ap, "mean_theme_ap": float(np.mean(list(ap.values()))),
            "records": int(max(len(y) for _, y in themes.values()))}
