"""What ranking costs: N items end to end vs bare ``model.encode`` of the same texts, same run.

    .venv/bin/python bench/ranking_cost.py [--n 1000] [--dev /work/shared/eval/dev.jsonl]

Items are the dev records, repeated, every sentence marked with its copy's number (" (1)") so
the embedding cache cannot cheat. The ranker's trained model is built first (once per seed /
feedback state in production) and timed separately. Then: a fresh store is ranked end to end
(model load, sentence embedding, features, scoring, writing) and compared with one bare
``SentenceTransformer.encode`` of the items' texts (title + text); a second rank must embed
nothing and not load the model. Peak memory is the process's max RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import load_config  # noqa: E402
from bot.ranking.embedder import load_embedder  # noqa: E402
from bot.ranking.text import split_sentences  # noqa: E402
from bot.store import open_db, save_items  # noqa: E402
from bot.store.ranking import make_ranker, rank_items  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_items(dev: str, n: int) -> list[dict]:
    with open(dev, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    items = []
    for i in range(n):
        # Every copy is marked, the first too: the dev texts may already be in the embedding cache
        # (bench/ranking.py, bench/ranking_seed.py) and would otherwise cost nothing to rank.
        r, copy = records[i % len(records)], i // len(records) + 1
        text = " ".join(f"{s} ({copy})" for s in split_sentences(r["text"]))
        title = f"{r['title']} ({copy})"
        items.append({"kind": r["kind"], "doi": f"10.0/bench.{i}", "title": title, "abstract": text,
                      "pub_types": r.get("pub_types") or []})
    return items


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--dev", default=str(Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"))
    args = parser.parse_args(argv)
    os.environ.setdefault("SPSBOT_CACHE_DIR", tempfile.mkdtemp(prefix="spsbot-cost-"))
    config = load_config()
    items = make_items(args.dev, args.n)

    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "cost.db")
        save_items(db, items, source="bench")
        t = time.perf_counter()
        trainer = make_ranker(db, config)
        trainer.model  # noqa: B018 - trains (the seed ships its feature rows) and caches the model
        train_s = time.perf_counter() - t
        db.close()
        print(f"training the ranker (seed set, once per seed/feedback state): {train_s:.1f}s, "
              f"peak RSS {peak_mb():.0f} MB")

        texts = [f"{i['title']}. {i['abstract']}" for i in items]
        bare = load_embedder()
        bare.encode(["warm-up"])  # load the model outside the timing
        model = bare._model  # the bare SentenceTransformer, with its default settings
        t = time.perf_counter()
        model.encode(texts)
        bare_s = time.perf_counter() - t
        print(f"bare model.encode of {len(texts)} texts: {bare_s:.1f}s, peak RSS {peak_mb():.0f} MB")

        db = open_db(Path(tmp) / "fresh.db")
        save_items(db, items, source="bench")
        # Prototype phrases come from the store cache in production; keep that out of the ratio too.
        embedder = load_embedder()
        t = time.perf_counter()
        counts = rank_items(db, config, embedder=embedder)
        rank_s = time.perf_counter() - t
        print(f"spsbot rank of {counts['scored']} items end to end (incl. model load): {rank_s:.1f}s, "
              f"{counts['embedded']} texts (sentences) embedded, peak RSS {peak_mb():.0f} MB")
        print(f"ratio rank / bare encode: {rank_s / bare_s:.2f}x (goal <= 1.2x)")

        second = load_embedder()
        t = time.perf_counter()
        again = rank_items(db, config, embedder=second)
        print(f"second rank: scored {again['scored']}, embedded {again['embedded']}, "
              f"model loaded: {second.loaded}, {time.perf_counter() - t:.2f}s")
        db.close()


if __name__ == "__main__":
    main()
