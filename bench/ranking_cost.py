"""What ranking costs: N items end to end vs bare ``model.encode`` of the same texts, same run.

    .venv/bin/python bench/ranking_cost.py [--n 500 5000] [--embedding passage|sentences]
                                           [--precision auto|float32|bfloat16] [--dev PATH]

Items are the dev records, repeated, each copy marked with its number (" (2)") so the embedding
cache cannot cheat: in its title under the default passage embedding (a record's sentence vectors
are cached under all its sentences, so one changed sentence is a new record), in every sentence
under ``--embedding sentences`` (cached per sentence). The ranker's trained model is built first
(once per seed / feedback state in production) and timed separately. Then, per N: one bare
``SentenceTransformer.encode`` of the items' texts (title + text, the library's defaults) and a
fresh store ranked end to end (model load, sentence embedding, features, scoring, writing), each
timed by the wall clock and by this process's CPU time (on a shared machine the CPU-time ratio is
the steadier one); a second rank must embed nothing and not load the model. Peak memory is the
process's max RSS after each step.

The baseline is the library's defaults, float32 arithmetic. Where the ranker computes in bfloat16
(``[ranking] precision``: "auto" picks it on CPUs with AMX) the same bare encode is also timed
under bfloat16 autocast, so the ratio that comes only from reading more tokens shows too.
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
from bot.ranking.embedder import EMBEDDINGS, PRECISIONS, embedder_for  # noqa: E402
from bot.ranking.text import split_sentences  # noqa: E402
from bot.store import open_db, save_items  # noqa: E402
from bot.ranking.stage import make_ranker, rank_items  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_items(dev: str, n: int, mark_every_sentence: bool = False) -> list[dict]:
    with open(dev, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    items = []
    for i in range(n):
        # Every copy is marked, the first too: the dev texts may already be in the embedding cache
        # (bench/ranking.py, bench/ranking_seed.py) and would otherwise cost nothing to rank.
        r, copy = records[i % len(records)], i // len(records) + 1
        sentences = split_sentences(r["text"])
        text = " ".join(f"{s} ({copy})" for s in sentences) if mark_every_sentence else " ".join(sentences)
        title = f"{r['title']} ({copy})"
        items.append({"kind": r["kind"], "doi": f"10.0/bench.{i}", "title": title, "abstract": text,
                      "pub_types": r.get("pub_types") or []})
    return items


def timed(fn, *args, **kwargs):
    """(fn(*args, **kwargs), wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--embedding", choices=EMBEDDINGS, default=None,
                        help="how sentence vectors are made (default: the profile's [ranking] embedding)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="the model's arithmetic (default: the profile's [ranking] precision)")
    parser.add_argument("--dev", default=str(Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"))
    args = parser.parse_args(argv)
    os.environ.setdefault("SPSBOT_CACHE_DIR", tempfile.mkdtemp(prefix="spsbot-cost-"))
    config = load_config()
    if args.embedding:
        config.sections["ranking"] = {**config.ranking, "embedding": args.embedding}
    if args.precision:
        config.sections["ranking"] = {**config.ranking, "precision": args.precision}
    settings = config.ranking
    print(f"embedding: {embedder_for(settings).passage_space} ({embedder_for(settings).embedding})")

    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "cost.db")
        _, train_s, _ = timed(lambda: make_ranker(db, config).model)  # trains and caches the model
        db.close()
        print(f"training the ranker (seed set, once per seed/feedback state): {train_s:.1f}s, "
              f"peak RSS {peak_mb():.0f} MB")
        bare = embedder_for(settings)
        bare.encode(["warm-up"])  # load the model outside the timing
        model = bare._model  # the bare SentenceTransformer, with its default settings
        print(f"precision: {settings.get('precision') or 'auto'} -> the ranker computes in {bare.compute}; "
              "the baseline is the library's float32")
        for n in args.n:
            items = make_items(args.dev, n, mark_every_sentence=bare.embedding == "sentences")
            texts = [f"{i['title']}. {i['abstract']}" for i in items]
            _, bare_s, bare_cpu = timed(model.encode, texts)
            print(f"\nN = {n}: bare model.encode of {len(texts)} texts: {bare_s:.1f}s (CPU {bare_cpu:.1f}s), "
                  f"peak RSS {peak_mb():.0f} MB")
            same = None
            if bare.compute == "bfloat16":
                import torch
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    _, same_s, same_cpu = timed(model.encode, texts)
                same = (same_s, same_cpu)
                print(f"N = {n}: bare model.encode under bfloat16 autocast: {same_s:.1f}s (CPU {same_cpu:.1f}s)")
            db = open_db(Path(tmp) / f"fresh-{n}.db")
            save_items(db, items, source="bench")
            embedder = embedder_for(settings)  # a fresh one: its model load is part of the rank
            counts, rank_s, rank_cpu = timed(rank_items, db, config, embedder=embedder)
            print(f"N = {n}: spsbot rank of {counts['scored']} items end to end (incl. model load): {rank_s:.1f}s "
                  f"(CPU {rank_cpu:.1f}s), {counts['embedded']} sentences embedded, peak RSS {peak_mb():.0f} MB")
            print(f"N = {n}: ratio rank / bare encode: wall {rank_s / bare_s:.2f}x, CPU {rank_cpu / bare_cpu:.2f}x "
                  "(goal <= 1.2x)", flush=True)
            if same:
                print(f"N = {n}: ratio rank / bare encode at the same bfloat16 arithmetic: wall "
                      f"{rank_s / same[0]:.2f}x, CPU {rank_cpu / same[1]:.2f}x", flush=True)
            second = embedder_for(settings)
            again, again_s, _ = timed(rank_items, db, config, embedder=second)
            print(f"N = {n}: second rank: scored {again['scored']}, embedded {again['embedded']}, "
                  f"model loaded: {second.loaded}, {again_s:.2f}s")
            db.close()


if __name__ == "__main__":
    main()
