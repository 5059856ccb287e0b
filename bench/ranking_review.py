"""How fast reviewed labels make up for a missing seed: relevance AUC / AP with 0, 10, 25, 50 labels.

    .venv/bin/python bench/ranking_review.py [/work/shared/eval/dev.jsonl] [--cache DB] [--random-runs 5]

A new disease has no labelled examples. This bench plays that on the SPS dev set: the bundled SPS
profile with no seed at all (``seed = "none"``), the packaged model, and a curator who answers
what `spsbot label --review` asks (``bot.ranking.review``: uncertainty sampling once both kinds
have a few labels, each answer moving its neighbours down the queue) with the dev set's own label.
Sessions of 10, 15 and 25 answers, each followed by a retrain (what `spsbot rank` does), give 10,
25 and 50 labels. The records are split three ways (stratified); in turn two thirds are the pool
the curator is asked about and one third is held out, never labelled, and measured: relevance
AUC, average precision and F1 at the ranker's cut, averaged over the three splits. Baseline in
the same run: the same numbers of labels drawn at random from the pool (--random-runs draws each).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import load_config  # noqa: E402
from bot.ranking.embedder import load_embedder  # noqa: E402
from bot.ranking.review import ReviewQueue, decision_threshold  # noqa: E402
from bot.ranking.stage import store_ranker  # noqa: E402
from bot.store import open_db  # noqa: E402

DEFAULT_DEV = str(Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl")
SESSIONS = (10, 15, 25)   # answers per review session; cumulative 10, 25, 50


def load(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [{"id": f"dev:{i}", "kind": r.get("kind") or "paper", "title": r.get("title") or "",
             "text": r.get("text") or "", "pub_types": r.get("pub_types") or [],
             "gold": r.get("relevant_to_sps") == 2} for i, r in enumerate(records)]


def seedless_config(tmp: Path):
    path = tmp / "seedless.toml"
    path.write_text('[ranking]\nseed = "none"\n', encoding="utf-8")
    return load_config(path, env={})


def score(config, embedder, db, records, labelled: dict[str, bool]):
    """(relevance scores, verdicts) after training on the labels so far, as `spsbot rank` would."""
    feedback = [{**r, "relevant": labelled[r["id"]], "themes": {}} for r in records if r["id"] in labelled]
    results = store_ranker(db, config, embedder, seed=[], feedback=feedback).score(records)
    return np.array([x["relevance"] for x in results]), np.array([x["relevant"] for x in results])


def measure(records, scores, verdicts, test: np.ndarray) -> dict[str, float]:
    y = np.array([records[i]["gold"] for i in test])
    return {"AUC": roc_auc_score(y, scores[test]), "AP": average_precision_score(y, scores[test]),
            "F1": f1_score(y, verdicts[test])}


def reviewed(config, embedder, db, records, doc_vectors, pool: np.ndarray, test: np.ndarray) -> list[dict]:
    """Held-out metrics with no labels, then after each review session over ``pool``."""
    labelled: dict[str, bool] = {}
    gold = {r["id"]: r["gold"] for r in records}
    scores, verdicts = score(config, embedder, db, records, labelled)
    out = [measure(records, scores, verdicts, test)]
    for size in SESSIONS:
        rows = [i for i in pool if records[i]["id"] not in labelled]
        known = (sum(labelled.values()), len(labelled) - sum(labelled.values()))
        queue = ReviewQueue([records[i]["id"] for i in rows], scores[rows], doc_vectors[rows],
                            decision_threshold(scores[rows], verdicts[rows]), known=known)
        for _ in range(size):
            item = queue.next()
            labelled[item] = gold[item]
            queue.answer(item, gold[item])
        scores, verdicts = score(config, embedder, db, records, labelled)
        out.append(measure(records, scores, verdicts, test))
    return out


def randomly(config, embedder, db, records, pool: np.ndarray, test: np.ndarray, seed: int) -> list[dict]:
    order = np.random.default_rng(seed).permutation(pool)
    out = []
    for count in (10, 25, 50):
        labelled = {records[i]["id"]: records[i]["gold"] for i in order[:count]}
        scores, verdicts = score(config, embedder, db, records, labelled)
        out.append(measure(records, scores, verdicts, test))
    return out


def _mean(runs: list[list[dict]]) -> list[dict]:
    return [{k: float(np.mean([run[i][k] for run in runs])) for k in ("AUC", "AP", "F1")}
            for i in range(len(runs[0]))]


def main(argv=None) -> None:
    import tempfile
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=DEFAULT_DEV)
    parser.add_argument("--cache", default="/tmp/spsbot-bench-embeddings.db",
                        help="SQLite embedding cache, so a second run embeds nothing")
    parser.add_argument("--random-runs", type=int, default=2)
    args = parser.parse_args(argv)
    records = load(args.path)
    t0 = time.perf_counter()
    splits = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(
        np.zeros(len(records)), [r["gold"] for r in records]))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SPSBOT_CACHE_DIR"] = str(Path(tmp) / "models")  # trained models: thrown away after
        config = seedless_config(Path(tmp))
        db = open_db(args.cache)
        embedder = load_embedder("")
        ranker = store_ranker(db, config, embedder, seed=[])
        doc_vectors = np.stack([p.doc_vector for p in ranker.prepare(records)])
        review = _mean([reviewed(config, embedder, db, records, doc_vectors, pool, test) for pool, test in splits])
        rand = _mean([randomly(config, embedder, db, records, pool, test, seed)
                      for pool, test in splits for seed in range(args.random_runs)])
    print(f"{len(records)} SPS dev records ({sum(r['gold'] for r in records)} relevant), no seed, packaged "
          f"model; held-out thirds, 3 splits; {time.perf_counter() - t0:.0f}s")
    print(f"{'labels':>6}  {'review AUC':>10} {'AP':>6} {'F1':>6}   {'random AUC':>10} {'AP':>6} {'F1':>6}")
    print(f"{0:>6}  {review[0]['AUC']:>10.3f} {review[0]['AP']:>6.3f} {review[0]['F1']:>6.3f}")
    for count, ours, base in zip((10, 25, 50), review[1:], rand):
        print(f"{count:>6}  {ours['AUC']:>10.3f} {ours['AP']:>6.3f} {ours['F1']:>6.3f}   "
              f"{base['AUC']:>10.3f} {base['AP']:>6.3f} {base['F1']:>6.3f}")


if __name__ == "__main__":
    main()
