"""Ranking quality on the labelled dev set: spsbot's ranker (k-fold cross-validated) vs BM25.

    .venv/bin/python bench/ranking.py [/work/shared/eval/dev.jsonl] [--folds 5] [--cache DB]

Prints, for both on the same records: relevance ROC AUC (relevant_to_sps == 2 vs the rest) and
average precision per theme among the relevant_to_sps == 2 records. The ranker is trained only on
each fold's training part (folds grouped by normalised title, so a record — or a copy of it —
never scores itself); the bundled seed is not used at all here (it is derived from the dev set).
The BM25 queries are the profile's own terms (every phrase of its PubMed query; each
theme's include terms), a stronger baseline than the eval README's keyword queries.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from rank_bm25 import BM25Okapi
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import load_config  # noqa: E402
from bot.ranking.scorer import Ranker, labelled_rows  # noqa: E402
from bot.ranking.embedder import EMBEDDINGS, PRECISIONS, embedder_for  # noqa: E402
from bot.ranking.stage import store_ranker  # noqa: E402
from bot.store import norm_title, open_db  # noqa: E402

# The shared evaluation set sits beside the repository (../shared/eval/dev.jsonl).
DEFAULT_DEV = str(Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl")


def load_records(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def metrics(records: list[dict], scores: dict[str, np.ndarray], themes: list[str]) -> dict[str, float]:
    y_rel = np.array([r["relevant_to_sps"] == 2 for r in records])
    out = {"relevance AUC": roc_auc_score(y_rel, scores["relevance"])}
    for theme in themes:
        y = np.array([r["themes"][theme] for r in records])[y_rel]
        out[theme] = average_precision_score(y, scores[theme][y_rel])
    out["mean theme AP"] = float(np.mean([out[t] for t in themes]))
    if "relevant" in scores:  # calibration and the data-chosen threshold (ranker only)
        out["relevance Brier"] = brier_score_loss(y_rel, scores["relevance"])
        out["relevant F1 @thr"] = f1_score(y_rel, scores["relevant"])
    return out


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def bm25_scores(records: list[dict], config) -> dict[str, np.ndarray]:
    """BM25 with one keyword query per target: the topic's names, each theme's include terms."""
    from bot.ranking.text import query_phrases
    bm25 = BM25Okapi([_tokens(f"{r['title']} {r['text']}") for r in records])
    queries = {"relevance": " ".join(query_phrases(config.topic.pubmed_query) + [config.topic.name])}
    for theme in config.themes:
        queries[theme.name] = " ".join(theme.include_terms)
    return {name: np.asarray(bm25.get_scores(_tokens(q))) for name, q in queries.items()}


def cross_validated_scores(records, ranker: Ranker, folds: int, seed: int = 0) -> dict[str, np.ndarray]:
    prepared = ranker.prepare(records)
    X, texts = ranker.matrix(prepared)
    groups = [norm_title(r["title"]) for r in records]
    strata = [r["relevant_to_sps"] for r in records]
    out = {name: np.zeros(len(records)) for name in ranker.target_names}
    out["relevant"] = np.zeros(len(records), dtype=bool)  # decided with the fold's own threshold
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(X, strata, groups):
        labels, weights = labelled_rows([records[i] for i in train], ranker.target_names)
        model = ranker.fit(X[train], [texts[i] for i in train], labels, weights)
        probs = ranker.predict(model, X[test], [texts[i] for i in test], [prepared[i] for i in test])
        for name in ranker.target_names:
            out[name][test] = probs[name]
        out["relevant"][test] = probs["relevance"] >= ranker.thresholds(model)["relevance"]
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=DEFAULT_DEV)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1, help="CV repeats with different fold seeds")
    parser.add_argument("--cache", default="/tmp/spsbot-bench-embeddings.db",
                        help="SQLite embedding cache, so a second run embeds nothing")
    parser.add_argument("--embedding", choices=EMBEDDINGS, default=None,
                        help="how sentence vectors are made (default: the profile's [ranking] embedding)")
    parser.add_argument("--window", type=int, default=None, help="tokens per model pass (passage embedding)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="the model's arithmetic (default: the profile's); give a fresh --cache to compare")
    args = parser.parse_args(argv)

    config = load_config()
    records = load_records(args.path)
    themes = config.theme_names
    t0 = time.perf_counter()
    settings = {**config.ranking, **{k: v for k, v in (("embedding", args.embedding), ("window", args.window),
                                                           ("precision", args.precision)) if v}}
    embedder = embedder_for(settings)
    ranker = store_ranker(open_db(args.cache), config, embedder, seed=[])
    runs = [metrics(records, cross_validated_scores(records, ranker, args.folds, seed=s), themes)
            for s in range(args.repeats)]
    ours = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    base = metrics(records, bm25_scores(records, config), themes)
    n_rel = sum(r["relevant_to_sps"] == 2 for r in records)
    print(f"{len(records)} records ({n_rel} relevant_to_sps == 2), {args.folds}-fold grouped CV"
          f" x{args.repeats}, {time.perf_counter() - t0:.1f}s; embedding {embedder.passage_space}"
          f" computed in {embedder.compute or 'nothing (all cached)'}")
    print(f"{'metric':<22}{'spsbot (CV)':>12}{'BM25':>8}   goal")
    goals = {"relevance AUC": 0.98, "registries": 0.70, "mean theme AP": 0.88}
    for key, value in ours.items():
        if key not in base:
            print(f"{key:<22}{value:>12.4f}{'-':>8}")
            continue
        verdict = "ok" if value >= base[key] else "below BM25"
        if key in goals:
            verdict = f">= {goals[key]:.2f} " + ("ok" if value >= goals[key] else "MISSED") + (
                "" if value >= base[key] else ", below BM25")
        elif key != "relevance AUC":
            verdict = ">= BM25 " + verdict
        print(f"{key:<22}{value:>12.4f}{base[key]:>8.3f}   {verdict}")


if __name__ == "__main__":
    main()
