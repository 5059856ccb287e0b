"""Benchmark: hybrid search latency on a 100,000-item store, against the bare operations it is made of.

    .venv/bin/python bench/search.py [--items 100000] [--queries 50] [--dev PATH] [--keep DIR]

Builds a store from the 299 real dev records (shared/eval/dev.jsonl) repeated with perturbed ids,
dates and titles; encodes the 299 texts once with the real model and gives each copy its record's
vector plus small noise (re-normalised), cached as search's doc vectors. Then runs 50 queries
through ``bot.search.hybrid.search`` (the query vectors are encoded once beforehand, so both sides measure
search, not the model) and, per query, the bare baseline: one numpy dot product over the same
matrix + one bare FTS5 query with the same MATCH expression. Prints figures only (no pass/fail):
p50/p95 of each and their ratio. Goal: hybrid p50 <= 50 ms and <= 3x the bare sum.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.search.hybrid import fts_expression, parse_query, search, vector_index  # noqa: E402
from bot.store import content_hash, norm_title, open_db  # noqa: E402
from bot.store.search import doc_model  # noqa: E402

QUERIES = [
    "rituximab", "intravenous immunoglobulin", "IVIG", "plasma exchange", "efgartigimod", "CAR-T",
    "stem cell transplantation", "diazepam", "intrathecal baclofen", "botulinum toxin", "gabapentin",
    "levetiracetam", "tizanidine", "benzodiazepine withdrawal", "\"stiff person syndrome\"",
    "stiff-limb syndrome", "progressive encephalomyelitis with rigidity and myoclonus", "PERM",
    "glycine receptor antibodies", "anti-GAD65", "amphiphysin breast cancer", "DPPX", "gephyrin",
    "paraneoplastic", "cerebrospinal fluid antibody titres", "HLA association", "electromyography",
    "continuous motor unit activity", "misdiagnosis functional disorder", "diagnostic criteria",
    "physical therapy rehabilitation", "anxiety depression", "quality of life", "task-specific phobia",
    "registry natural history", "retrospective cohort", "incidence prevalence", "pregnancy",
    "children pediatric", "type 1 diabetes GAD", "epilepsy GAD65", "cerebellar ataxia",
    "opsoclonus", "hyperekplexia", "tetanus -vaccine", "spasticity after stroke",
    "drug pump into the spinal canal", "muscle spasms treatment", "B-cell depletion", "FcRn blockade",
]


def dev_items(dev_path: Path) -> list[dict]:
    records = [json.loads(line) for line in dev_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"kind": r["kind"], "title": r["title"], "abstract": r.get("text") or "", "journal": r.get("journal"),
             "pub_types": r.get("pub_types") or [], "year": r.get("year")} for r in records]


def build_store(path: Path, base: list[dict], vectors: np.ndarray, n_items: int, model: str) -> None:
    """Insert ``n_items`` perturbed copies (ids, dates, a title suffix) and their doc vectors."""
    rng = random.Random(7)
    noise = np.random.default_rng(7)
    db = open_db(path)
    rows, vec_rows = [], []
    started = time.perf_counter()
    for i in range(n_items):
        src = base[i % len(base)]
        year = rng.randint(1985, 2026)
        title = src["title"] if i < len(base) else f"{src['title']} [{i // len(base)}]"
        record = {"title": title, "abstract": src["abstract"], "pub_types": src["pub_types"]}
        digest = content_hash(record)
        rows.append({
            "id": f"pmid:{30_000_000 + i}" if src["kind"] == "paper" else f"nct:NCT{90_000_000 + i:08d}",
            "kind": src["kind"], "pmid": str(30_000_000 + i) if src["kind"] == "paper" else None,
            "title": title, "abstract": src["abstract"], "journal": src["journal"],
            "pub_date": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "pub_year": year,
            "pub_types": json.dumps(src["pub_types"]), "sources": '["pubmed"]', "norm_title": norm_title(title),
            "content_hash": digest, "first_seen": "2026-11-01T00:00:00+00:00",
            "last_seen": "2026-11-01T00:00:00+00:00", "updated_at": "2026-11-01T00:00:00+00:00",
        })
        vector = vectors[i % len(base)] + noise.normal(0, 0.02, vectors.shape[1]).astype(np.float32)
        vector /= np.linalg.norm(vector)
        vec_rows.append({"content_hash": digest, "model": doc_model(model), "dims": int(vector.shape[0]),
                         "vector": vector.astype(np.float32).tobytes(), "created_at": "2026-11-01T00:00:00+00:00"})
        if len(rows) == 5000:
            _flush(db, rows, vec_rows)
    _flush(db, rows, vec_rows)
    print(f"built store: {n_items} items in {time.perf_counter() - started:.1f}s, "
          f"{path.stat().st_size / 1e6:.0f} MB", flush=True)
    db.close()


def _flush(db, rows, vec_rows):
    with db.atomic():
        db["items"].insert_all(rows, batch_size=1000)
        db["embeddings"].insert_all(vec_rows, batch_size=1000, pk=("content_hash", "model"), replace=True)
    rows.clear()
    vec_rows.clear()


class CachedQueries:
    """An embedder answering from vectors computed beforehand (the model is measured separately)."""

    def __init__(self, embedder, table: dict[str, np.ndarray]):
        self.model_name, self.embedding = embedder.model_name, embedder.embedding
        self.passage_space = embedder.passage_space
        self.table = table

    def encode(self, texts):
        return np.stack([self.table[t] for t in texts])


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--dev", type=Path, default=ROOT.parent / "shared" / "eval" / "dev.jsonl")
    parser.add_argument("--keep", type=Path, default=None, help="build/reuse the store in this folder")
    args = parser.parse_args()
    if not args.dev.exists():
        args.dev = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"
    from bot.ranking.embedder import load_embedder
    embedder = load_embedder("")  # the default: doc vectors live under its passage_space
    base = dev_items(args.dev)
    queries = (QUERIES * (args.queries // len(QUERIES) + 1))[:args.queries]

    folder = args.keep or Path(tempfile.mkdtemp(prefix="spsbot-bench-"))
    path = folder / f"bench-{args.items}.db"
    if not path.exists():
        started = time.perf_counter()
        base_vectors = embedder.encode([f"{b['title']}\n{b['abstract']}" for b in base])
        print(f"encoded {len(base)} dev texts in {time.perf_counter() - started:.1f}s", flush=True)
        build_store(path, base, base_vectors, args.items, embedder.passage_space)
    query_texts = sorted({parse_query(q).positive_text for q in queries})
    encode_times = []
    for text in query_texts:  # what one query costs the model (not in the figures below)
        t0 = time.perf_counter()
        embedder.encode([text])
        encode_times.append(time.perf_counter() - t0)
    table = dict(zip(query_texts, embedder.encode(query_texts)))

    db = open_db(path)
    fake = CachedQueries(embedder, table)

    t0 = time.perf_counter()
    index = vector_index(db, embedder.passage_space)
    print(f"vector matrix load (once per process): {time.perf_counter() - t0:.2f}s, "
          f"{index.matrix.shape[0]} x {index.matrix.shape[1]}, {index.matrix.nbytes / 1e6:.0f} MB", flush=True)
    search(db, queries[0], embedder=fake)  # warm-up (page cache, statement cache)

    from bot.search.hybrid import Filters
    filters = Filters(kind="paper", since="2015-01-01", pub_types=["case"])
    hybrid, words, bare_dot, bare_fts, filtered = [], [], [], [], []
    for query in queries:
        t0 = time.perf_counter()
        search(db, query, embedder=fake, limit=20)
        hybrid.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        search(db, query, semantic=False, limit=20)
        words.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        search(db, query, filters, embedder=fake, limit=20)
        filtered.append(time.perf_counter() - t0)
        query_vector = table[parse_query(query).positive_text]
        t0 = time.perf_counter()
        index.matrix @ query_vector
        bare_dot.append(time.perf_counter() - t0)
        match = fts_expression(parse_query(query))
        t0 = time.perf_counter()
        db.execute("SELECT rowid FROM items_fts WHERE items_fts MATCH ? ORDER BY rank LIMIT 200", [match]).fetchall()
        bare_fts.append(time.perf_counter() - t0)
    bare = [d + f for d, f in zip(bare_dot, bare_fts)]

    print(f"\n{args.items} items, {len(queries)} queries (ms)          p50      p95")
    for name, values in (("hybrid search (bot.search.hybrid.search)", hybrid), ("words only (--no-semantic)", words),
                         ("hybrid + 3 filters (kind, since, type)", filtered),
                         ("bare numpy dot product", bare_dot), ("bare FTS5 query", bare_fts),
                         ("bare sum (dot + FTS)", bare), ("model: encode one query", encode_times)):
        print(f"  {name:<38} {pct(values, 50):8.1f} {pct(values, 95):8.1f}")
    print(f"\nratio hybrid / bare sum: p50 {pct(hybrid, 50) / pct(bare, 50):.2f}x, "
          f"p95 {pct(hybrid, 95) / pct(bare, 95):.2f}x  (goal: p50 <= 50 ms and <= 3x)")
    print(f"ratio words-only / bare FTS: p50 {pct(words, 50) / pct(bare_fts, 50):.2f}x")
    if not args.keep:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
