"""Each profile on each disease's dev records, with zero labels: does the ranker stay on its topic?

    .venv/bin/python bench/cross_disease.py [--cache DB] [--folds 3]

Profiles: the bundled SPS profile (bot/profiles/sps.toml; without its seed, and with the bundled
seed, which is derived from the SPS dev set: its SPS-set figures are in-sample) and the MG profile a
volunteer wrote from `spsbot init` (../shared/eval/mg/mg.toml). Dev sets: ../shared/eval/dev.jsonl
(relevant_to_sps) and ../shared/eval/mg/dev.jsonl (relevant_to_mg). Printed per profile:

- on its own disease's records: relevance ROC AUC (2 vs the rest), mean theme AP among the
  relevant (2) records, and the share of hard negatives (0) called relevant;
- on the other disease's records that never mention this profile's topic: the share called
  relevant (a feed subscriber's "About X" that is about a neighbour);
- the quality the ranker states for itself up front (``scorer.expected_quality``), beside the measured one.

"mg (mg.toml), store" is the MG profile as ``spsbot rank`` runs it on a store holding both dev sets'
records (no labels; both, as the self-training pool must hold at least as many records as the
theme reader learnt from, 299): its unlabelled themes self-train on them (bot.ranking.selftrain).
The SPS profile without its seed gets no such row: its theme reader learnt from the SPS records,
so soft labels on them would carry their own labels.

No label of either set is used to score. The theme reader (bot.ranking.transfer) is learnt from
the bundled seed, i.e. the SPS set's theme labels: on the SPS set it is learnt on the other folds
(grouped by title, ``--folds``), so no SPS record is read by a reader that saw its labels.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import GroupKFold

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import load_config  # noqa: E402
from bot.ranking import scorer  # noqa: E402
from bot.ranking.embedder import PRECISIONS, embedder_for  # noqa: E402
from bot.ranking.transfer import bundled_themes, fit_reader, theme_reader  # noqa: E402
from bot.ranking.stage import store_ranker  # noqa: E402
from bot.store import norm_title, open_db  # noqa: E402

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
SETS = {"sps": (EVAL / "dev.jsonl", "relevant_to_sps"), "mg": (EVAL / "mg" / "dev.jsonl", "relevant_to_mg")}
# Whether a record names the disease at all (any of its usual names or its capital acronym):
# a record of the other set that does is not counted as "never mentions it".
MENTIONS = {"sps": re.compile(r"stiff[- ]?(?:person|man|men|limb|leg|trunk)|\bSPS\b|encephalomyelitis with rigidity",
                              re.IGNORECASE),
            "mg": re.compile(r"myasthen|(?-i:\bMG\b)", re.IGNORECASE)}


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def scored(ranker, records: list[dict], folds: int, in_sample_reader: bool) -> list[dict]:
    """Results per record in input order. When the theme reader learnt from these very records
    (the SPS profile without its seed, on the SPS set: the bundled seed is that set), each fold is
    scored by a reader learnt from the other folds' rows of the bundle (its rows are in the set's order)."""
    if not in_sample_reader:
        return ranker.score(records)
    themes = bundled_themes(ranker.embedder.passage_space)
    assert themes and all(len(y) == len(records) for _, y in themes.values()), "bundle rows != dev set"
    out: list[dict | None] = [None] * len(records)
    groups = [norm_title(r["title"]) for r in records]
    try:
        for train, test in GroupKFold(n_splits=folds).split(records, groups=groups):
            reader = fit_reader([rows[train] for rows, _ in themes.values()], [y[train] for _, y in themes.values()])
            scorer.theme_reader = lambda _model, reader=reader: reader
            for i, result in zip(test, ranker.score([records[i] for i in test])):
                out[i] = result
    finally:
        scorer.theme_reader = theme_reader
    return out


def figures(name: str, config, results: dict[str, list[dict]], records: dict[str, list[dict]]) -> dict:
    own, key = records[name], SETS[name][1]
    res = results[name]
    y = np.array([r[key] == 2 for r in own])
    rel = np.array([s["relevance"] for s in res])
    called = np.array([s["relevant"] for s in res])
    aps = {}
    for theme in config.theme_names:
        t = np.array([r["themes"].get(theme, 0) for r in own])[y]
        aps[theme] = average_precision_score(t, np.array([s["themes"][theme] for s in res])[y]) if t.any() else None
    negatives = np.array([r[key] == 0 for r in own])
    out = {"AUC": roc_auc_score(y, rel), "mean theme AP": float(np.mean([v for v in aps.values() if v is not None])),
           "themes": aps, "hard negatives relevant": (int(called[negatives].sum()), int(negatives.sum()))}
    for other in SETS:
        if other == name:
            continue
        never = [i for i, r in enumerate(records[other]) if not MENTIONS[name].search(f"{r['title']} {r['text']}")]
        hits = [i for i in never if results[other][i]["relevant"]]
        out[f"{other} records relevant"] = (len(hits), len(never))
        out[f"{other} examples"] = [(round(results[other][i]["relevance"], 2), records[other][i]["title"][:70])
                                    for i in sorted(hits, key=lambda i: -results[other][i]["relevance"])[:3]]
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/tmp/spsbot-cross-disease.db", help="SQLite embedding cache")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="the model's arithmetic (default: the profile's [ranking] precision)")
    args = parser.parse_args(argv)
    records = {name: load(path) for name, (path, _) in SETS.items()}
    db = open_db(args.cache)
    store = records["mg"] + records["sps"]
    profiles = [("sps, no seed", "sps", load_config(None, env={}), [], None),
                ("sps, bundled seed*", "sps", load_config(None, env={}), None, None),
                ("mg (mg.toml)", "mg", load_config(EVAL / "mg" / "mg.toml", env={}), [], None),
                ("mg (mg.toml), store", "mg", load_config(EVAL / "mg" / "mg.toml", env={}), [], store)]
    for label, name, config, seed, pool in profiles:
        # what "auto" means for this profile here (a profile ranked without a seed: no int8), or --precision
        precision = args.precision or config.ranking.get("precision")
        embedder = embedder_for({**config.ranking, "precision": precision}, labelled=seed != [])
        ranker = store_ranker(db, config, embedder, seed=seed, unlabelled=pool)
        _ = ranker.model  # trained now, under the bundled reader (``scored`` swaps it per fold on the SPS set)
        results = {s: scored(ranker, records[s], args.folds, in_sample_reader=seed == [] and s == "sps")
                   for s in SETS}
        f = figures(name, config, results, records)
        other = next(s for s in SETS if s != name)
        neg, n_neg = f["hard negatives relevant"]
        hit, n_never = f[f"{other} records relevant"]
        print(f"{label:<21} AUC {f['AUC']:.3f}  mean theme AP {f['mean theme AP']:.3f}  "
              f"hard negatives relevant {neg}/{n_neg} ({100 * neg / n_neg:.1f}%)  "
              f"{other} records never naming {name} called relevant {hit}/{n_never} ({100 * hit / n_never:.1f}%)")
        print(" " * 20 + "  themes: " + ", ".join(f"{t[:6]} {v:.3f}" for t, v in f["themes"].items() if v is not None))
        for score, title in f[f"{other} examples"]:
            print(" " * 22 + f"e.g. {score:.2f} {title}")
        if seed == []:
            print(" " * 22 + f"stated: {scorer.expected_quality(ranker.embedder.passage_space)}")
    print("* the bundled seed is derived from the SPS dev set: its SPS figures are in-sample "
          "(bench/ranking.py cross-validates them)")


if __name__ == "__main__":
    main()
