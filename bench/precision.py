"""How faithful each arithmetic is to float32 over many real records (what the tests check on a few).

    .venv/bin/python bench/precision.py [--precision bfloat16 int8] [--records PATH] [--limit N]

For each ``[ranking] precision`` given, on the records (default: the tests' 164-record dev subset):
the one-pass sentence vectors' cosine to float32 (min, 1st percentile, mean), and the scores of the
bundled ranker (each with the bundled seed for its own vectors) against float32's — largest
relevance and theme differences, relevant and label flips, evidence sentences changed — with the
CPU time of each model pass. bfloat16 is emulated (slow) on a CPU without AMX.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import load_config  # noqa: E402
from bot.ranking.embedder import Embedder, choose_precision  # noqa: E402
from bot.ranking.scorer import Ranker  # noqa: E402
from bot.ranking.text import record_sentences  # noqa: E402

SUBSET = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "search" / "dev_subset.jsonl"


def cpu_timed(fn, *args):
    start = time.process_time()
    return fn(*args), time.process_time() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", nargs="+", default=["bfloat16", "int8"], choices=["bfloat16", "int8"])
    parser.add_argument("--records", default=str(SUBSET))
    parser.add_argument("--limit", type=int, default=0, help="only the first N records")
    args = parser.parse_args(argv)
    with open(args.records, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    records = records[:args.limit] if args.limit else records
    passages = [record_sentences(r) for r in records]
    config = load_config()
    print(f"{len(records)} records, {sum(map(len, passages))} sentences; auto here: "
          f"{' ('.join(choose_precision('auto'))})")
    exact = Embedder(precision="float32")
    exact.encode(["warm-up"])  # model load (and int8's quantisation) outside the timing
    vectors, cpu = cpu_timed(exact.encode_passages, passages)
    scores = Ranker(config, exact).score(records)
    print(f"float32: model pass CPU {cpu:.1f}s")
    for precision in args.precision:
        other = Embedder(precision=precision)
        other.encode(["warm-up"])
        moved, other_cpu = cpu_timed(other.encode_passages, passages)
        cos = np.concatenate([(a * b).sum(axis=1) for a, b in zip(vectors, moved)])
        ranked = Ranker(config, other).score(records)
        relevance = max(abs(x["relevance"] - y["relevance"]) for x, y in zip(scores, ranked))
        themes = max(abs(x["themes"][k] - y["themes"][k]) for x, y in zip(scores, ranked) for k in x["themes"])
        print(f"{precision}: model pass CPU {other_cpu:.1f}s ({other_cpu / cpu:.2f}x float32); sentence vectors "
              f"cosine to float32 min {cos.min():.4f}, 1st percentile {np.percentile(cos, 1):.4f}, "
              f"mean {cos.mean():.4f}; "
              f"scores: relevance max diff {relevance:.3f}, themes {themes:.3f}, relevant flips "
              f"{sum(x['relevant'] != y['relevant'] for x, y in zip(scores, ranked))}, label changes "
              f"{sum(x['labels'] != y['labels'] for x, y in zip(scores, ranked))}, evidence changed "
              f"{sum(x['evidence'] != y['evidence'] for x, y in zip(scores, ranked))} of {len(records)}", flush=True)


if __name__ == "__main__":
    main()
