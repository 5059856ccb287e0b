"""Self-training of unlabelled themes (bot.ranking.selftrain): how much it adds, and on what pool.

    .venv/bin/python bench/self_training.py [--cache DB] [--loo] [--boot 1000]

No label of either dev set is used to score; the theme labels are only read to measure. Printed:

- MG profile (../shared/eval/mg/mg.toml) on the MG dev records, mean theme AP among the records about
  MG: the pooled reader alone; self-trained on a store of both dev sets (what bench/cross_disease.py's
  "store" row runs); on the MG records alone (transductive: each record is in its own pool); on
  two thirds and read on the third it never saw (3 folds by title: a smaller pool, inductive);
  with --loo, each record read by a model whose pool is the other 143 (slow: one fit per record
  and theme). A paired bootstrap (--boot resamples of the MG records) of the store's gain.
- SPS profile without its seed on the SPS dev records: its reader learnt from the SPS theme labels,
  so each record's soft label comes from a reader learnt on the other folds (3, by title); the
  self-trained model is fitted on all records' soft labels and read on each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GroupKFold

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cross_disease import EVAL, SETS, load  # noqa: E402

from bot.config import load_config  # noqa: E402
from bot.ranking import features as F  # noqa: E402
from bot.ranking import selftrain as S  # noqa: E402
from bot.ranking.embedder import embedder_for  # noqa: E402
from bot.ranking.stage import store_ranker  # noqa: E402
from bot.ranking.transfer import bundled_themes, fit_reader, generic_rows, theme_reader  # noqa: E402
from bot.store import norm_title, open_db  # noqa: E402


class Fixed:
    """A 'reader' that gives precomputed probabilities for the rows of one pool, in order."""

    def __init__(self, p: np.ndarray):
        self.p = p

    def predict_proba(self, rows):
        assert len(rows) == len(self.p)
        return np.column_stack([1 - self.p, self.p])


def matrix(ranker, records):
    return ranker.matrix(ranker.prepare(records))


def mean_ap(truth: dict, scores: dict, rows) -> float:
    return float(np.mean([average_precision_score(truth[t][rows], scores[t][rows])
                          for t in truth if truth[t][rows].any()]))


def self_trained(ranker, X, texts, reader, fit_rows, read_rows):
    """Theme scores of ``read_rows`` from models self-trained on ``fit_rows`` (soft labels by ``reader``)."""
    names = ranker.config.theme_names
    models, vectorizer = S.fit_themes(X[fit_rows], [texts[i] for i in fit_rows], ranker.targets, names, reader)
    return S.predict(models, vectorizer, X[read_rows], [texts[i] for i in read_rows])


def mg(db, embedder, args) -> None:
    records, key = load(SETS["mg"][0]), SETS["mg"][1]
    other = load(SETS["sps"][0])
    config = load_config(EVAL / "mg" / "mg.toml", env={})
    ranker = store_ranker(db, config, embedder, seed=[])
    X, texts = matrix(ranker, records + other)
    n, names = len(records), config.theme_names
    about = np.array([r[key] == 2 for r in records])
    truth = {t: np.array([r["themes"].get(t, 0) for r in records]) for t in names}
    reader = theme_reader(embedder.passage_space)
    layout = F.column_layout(ranker.targets)
    alone = {t: reader.predict_proba(generic_rows(X[:n], layout, t))[:, 1] for t in names}
    mine = np.arange(n)
    store = self_trained(ranker, X, texts, reader, np.arange(len(X)), mine)
    own = self_trained(ranker, X, texts, reader, mine, mine)
    folds = {t: np.zeros(n) for t in names}
    groups = [norm_title(r["title"]) for r in records]
    for fit, held in GroupKFold(n_splits=3).split(records, groups=groups):
        for t, v in self_trained(ranker, X, texts, reader, fit, held).items():
            folds[t][held] = v
    rows = {"reader alone": alone, f"store of both sets ({len(X)})": store, f"MG records alone ({n})": own,
            "two thirds, read on the third": folds}
    if args.loo:
        loo = {t: np.zeros(n) for t in names}
        for i in range(n):
            for t, v in self_trained(ranker, X, texts, reader, np.delete(mine, i), [i]).items():
                loo[t][i] = v[0]
        rows[f"the other {n - 1}, each left out"] = loo
    for label, scores in rows.items():
        per = " ".join(f"{t[:6]} {average_precision_score(truth[t][about], scores[t][about]):.3f}" for t in names)
        print(f"mg   {label:<32} mean theme AP {mean_ap(truth, scores, about):.3f}   {per}")
    rng = np.random.default_rng(0)
    idx = np.flatnonzero(about)
    gains = np.array([mean_ap(truth, store, pick) - mean_ap(truth, alone, pick)
                      for pick in (rng.choice(idx, len(idx)) for _ in range(args.boot))])
    print(f"mg   store's gain {mean_ap(truth, store, about) - mean_ap(truth, alone, about):+.3f}: 95% bootstrap "
          f"interval {np.percentile(gains, 2.5):+.3f} to {np.percentile(gains, 97.5):+.3f}, positive in "
          f"{100 * (gains > 0).mean():.0f}% of {args.boot} resamples of the {len(idx)} MG records")


def sps(db, embedder) -> None:
    records, key = load(SETS["sps"][0]), SETS["sps"][1]
    config = load_config(None, env={})
    ranker = store_ranker(db, config, embedder, seed=[])
    X, texts = matrix(ranker, records)
    names, layout = config.theme_names, F.column_layout(ranker.targets)
    about = np.array([r[key] == 2 for r in records])
    truth = {t: np.array([r["themes"].get(t, 0) for r in records]) for t in names}
    themes = bundled_themes(embedder.passage_space)  # rows in the dev set's order (the seed is that set)
    alone = {t: np.zeros(len(records)) for t in names}
    groups = [norm_title(r["title"]) for r in records]
    for fit, held in GroupKFold(n_splits=3).split(records, groups=groups):
        reader = fit_reader([r[fit] for r, _ in themes.values()], [y[fit] for _, y in themes.values()])
        for t in names:
            alone[t][held] = reader.predict_proba(generic_rows(X[held], layout, t))[:, 1]
    everyone = np.arange(len(records))
    store = {}
    for t in names:  # each theme's soft labels are the out-of-fold reader's
        store.update({t: self_trained(ranker, X, texts, Fixed(alone[t]), everyone, everyone)[t]})
    for label, scores in (("reader alone (out of fold)", alone), (f"SPS records ({len(records)})", store)):
        print(f"sps  {label:<32} mean theme AP {mean_ap(truth, scores, about):.3f}   "
              + " ".join(f"{t[:6]} {average_precision_score(truth[t][about], scores[t][about]):.3f}" for t in names))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/tmp/spsbot-cross-disease.db", help="SQLite embedding cache")
    parser.add_argument("--loo", action="store_true", help="also leave each MG record out of its own pool (slow)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    args = parser.parse_args(argv)
    embedder = embedder_for(load_config().ranking)
    db = open_db(args.cache)
    mg(db, embedder, args)
    sps(db, embedder)


if __name__ == "__main__":
    main()
