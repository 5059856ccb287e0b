"""Weak labels: what spsbot states from them (``weak.estimate``), what it reaches, and why nothing learns from them.

    .venv/bin/python bench/weak_labels.py [--cache DB] [--folds 3]

The development sets carry no MeSH, so NLM's indexing is *simulated* from their labels: a record
about the disease (2) gets the heading as a major topic (a weak positive), a tangential one (1) as a
minor topic (no label), any other (0) MeSH without the heading (a weak negative). Real indexing is
noisier than this (an indexer and the set's labeller disagree now and then), so read the figures
as what the estimate does with clean weak labels, not as what a store's MeSH will give.

Per profile (MG: ../shared/eval/mg/mg.toml on the MG set; SPS: the bundled profile *without* its
seed on the SPS set), folds grouped by title: the training folds play the store (their weak labels
give the stated precision and recall of the ranker's decisions on them), the held-out fold is
measured with its real labels (tangential records count as not relevant). Beside it, the route
spsbot does not take: a relevance model learnt from the training folds' weak labels (as a seed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cross_disease import EVAL, SETS, load  # noqa: E402

from bot.config import load_config  # noqa: E402
from bot.ranking.embedder import embedder_for  # noqa: E402
from bot.ranking.stage import store_ranker  # noqa: E402
from bot.ranking.weak import estimate as weak_estimate  # noqa: E402
from bot.store import norm_title, open_db  # noqa: E402


def precision_recall(y: np.ndarray, called: np.ndarray) -> tuple[float, float]:
    hits = int((called & y).sum())
    return hits / max(int(called.sum()), 1), hits / max(int(y.sum()), 1)


def run(db, embedder, config, records: list[dict], key: str, folds: int) -> dict:
    y = np.array([r[key] == 2 for r in records])
    out = {mode: (np.zeros(len(records)), np.zeros(len(records), dtype=bool)) for mode in ("rule", "learnt")}
    estimates = []
    groups = [norm_title(r["title"]) for r in records]
    rule = store_ranker(db, config, embedder, seed=[])
    for train, test in GroupKFold(n_splits=folds).split(records, groups=groups):
        weak = [{**records[i], "relevant": records[i][key] == 2} for i in train if records[i][key] in (0, 2)]
        learnt = store_ranker(db, config, embedder, seed=weak)
        for mode, ranker in (("rule", rule), ("learnt", learnt)):
            for i, result in zip(test, ranker.score([records[i] for i in test])):
                out[mode][0][i], out[mode][1][i] = result["relevance"], result["relevant"]
        decided = {r["id"]: r["relevant"] for r in rule.score(weak)}
        estimates.append(weak_estimate(weak, decided))
    figures = {}
    clear = np.array([r[key] in (0, 2) for r in records])   # what a weak label can be: no tangential record
    for mode, (scores, called) in out.items():
        precision, recall = precision_recall(y, called)
        clear_precision, _ = precision_recall(y[clear], called[clear])
        figures[mode] = {"AUC": roc_auc_score(y, scores), "precision": precision, "recall": recall,
                         "clear precision": clear_precision}
    figures["stated"] = {k: float(np.mean([e[k] for e in estimates])) for k in ("precision", "recall")}
    figures["weak labels"] = int(np.mean([e["positives"] + e["negatives"] for e in estimates]))
    return figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/tmp/spsbot-cross-disease.db", help="SQLite embedding cache")
    parser.add_argument("--folds", type=int, default=3)
    args = parser.parse_args(argv)
    embedder = embedder_for(load_config().ranking)
    db = open_db(args.cache)
    profiles = [("mg (mg.toml)", "mg", load_config(EVAL / "mg" / "mg.toml", env={})),
                ("sps, no seed", "sps", load_config(None, env={}))]
    for label, name, config in profiles:
        path, key = SETS[name]
        f = run(db, embedder, config, load(path), key, args.folds)
        r, w, s = f["rule"], f["learnt"], f["stated"]
        print(f"{label:<14} as spsbot ranks: AUC {r['AUC']:.3f}  precision {r['precision']:.3f} (without tangential "
              f"records {r['clear precision']:.3f})  recall {r['recall']:.3f}   stated from ~{f['weak labels']} "
              f"weak labels: precision {s['precision']:.3f}  recall {s['recall']:.3f}")
        print(f"{'':<14} learnt from them: AUC {w['AUC']:.3f}  precision {w['precision']:.3f} (without tangential "
              f"records {w['clear precision']:.3f})  recall {w['recall']:.3f}")


if __name__ == "__main__":
    main()
