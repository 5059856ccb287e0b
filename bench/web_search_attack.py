"""Benchmark: what the costliest searches do to the web front (issue 25), on a large store.

    .venv/bin/python bench/web_search_attack.py [--items 20000] [--attackers 4] [--seconds 20] [--keep DIR]

Builds a words-only store of ``--items`` items from the 299 real dev records (shared/eval/dev.jsonl)
with perturbed titles. Then prints, per hostile query: the bare FTS5 cost of its MATCH expression
(what the web front ran before: no limit), and what ``bot.search.hybrid.search`` does with the web
front's budget (refused at once, answered, or stopped by the budget, and how long that took).
Last, the real web front on waitress (127.0.0.1) under ``--attackers`` clients sending those
searches back to back for ``--seconds``: how long /healthz and the home page take meanwhile, and
what the searches were answered. Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.search.hybrid import SearchError, fts_expression, parse_query, search  # noqa: E402
from bot.store import content_hash, norm_title, open_db  # noqa: E402

COMMON = ("the of and in with a to for was is patients were by on as at from this that or be an are "
          "after not which treatment syndrome clinical study we had have been these but also".split())
HOSTILE = {
    "64 x a*": " ".join(["a*"] * 64),
    "4 prefixes of 3 letters": "sti* syn* pat* ant*",
    "64 common words OR'ed": " OR ".join((COMMON * 2)[:64]),
    "64 common words": " ".join((COMMON * 2)[:64]),
}


def build_store(path: Path, dev: Path, n_items: int) -> None:
    records = [json.loads(line) for line in dev.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(7)
    db = open_db(path)
    rows, scores = [], []
    for i in range(n_items):
        src = records[i % len(records)]
        title = f"{src['title']} [{i}]"
        rows.append({"id": f"pmid:{30_000_000 + i}", "kind": "paper", "pmid": str(30_000_000 + i), "title": title,
                     "abstract": src.get("text") or "", "pub_date": f"{rng.randint(1990, 2026)}-01-01",
                     "sources": '["pubmed"]', "norm_title": norm_title(title), "pub_types": "[]",
                     "content_hash": content_hash({"title": title, "abstract": src.get("text") or ""}),
                     "first_seen": "2026-11-01T00:00:00+00:00", "last_seen": "2026-11-01T00:00:00+00:00",
                     "updated_at": "2026-11-01T00:00:00+00:00"})
        scores.append({"item_id": f"pmid:{30_000_000 + i}", "relevance": 0.9, "relevant": 1, "labels": "[]"})
    with db.atomic():
        db["items"].insert_all(rows, batch_size=1000)
        db["scores"].insert_all(scores, batch_size=1000, pk="item_id", alter=True)
    db.close()


def bare_and_budgeted(path: Path, budget: float) -> None:
    db = open_db(path)
    print(f"\nper query on {db['items'].count:,} items (budget {budget:g} s):")
    for name, query in HOSTILE.items():
        try:  # the MATCH expression without the new limits, as the web front ran it before
            parsed = parse_query(query)
        except SearchError:
            from bot.search import hybrid
            limits = hybrid.MAX_PREFIX_TERMS, hybrid.MIN_PREFIX_CHARS
            hybrid.MAX_PREFIX_TERMS, hybrid.MIN_PREFIX_CHARS = 10_000, 0
            parsed = parse_query(query)
            hybrid.MAX_PREFIX_TERMS, hybrid.MIN_PREFIX_CHARS = limits
        started = time.perf_counter()
        db.execute("SELECT rowid FROM items_fts WHERE items_fts MATCH ? ORDER BY rank LIMIT 200",
                   [fts_expression(parsed)]).fetchall()
        bare = time.perf_counter() - started
        started = time.perf_counter()
        try:
            hits = len(search(db, query, semantic=False, limit=11, budget=budget).hits)
            outcome = f"answered ({hits} hits)"
        except SearchError as e:
            outcome = f"refused: {str(e)[:60]}…"
        print(f"  {name:26s} bare FTS5 {bare:7.2f} s | now {time.perf_counter() - started:6.2f} s, {outcome}")
    db.close()


def under_attack(path: Path, attackers: int, seconds: float) -> None:
    import requests

    from bot.config import load_config
    from bot.web.app import create_app
    sys.path.insert(0, str(ROOT / "tests"))
    from web_support import running
    folder = Path(tempfile.mkdtemp(prefix="spsbot-attack-"))
    (folder / "web.toml").write_text("[web]\nsemantic_search = false\nsearches_per_client_minute = 10000\n",
                                     encoding="utf-8")
    config = load_config(folder / "web.toml")
    statuses: dict[int, int] = {}
    stop = threading.Event()
    with running(create_app(config, str(path)), config.web) as url:
        def attack(n: int) -> None:
            queries = list(HOSTILE.values())
            while not stop.is_set():
                try:
                    answer = requests.get(url + "/search", params={"q": queries[n % len(queries)]}, timeout=60)
                    status = answer.status_code
                except requests.RequestException:
                    status = 0
                statuses[status] = statuses.get(status, 0) + 1
                n += 1

        threads = [threading.Thread(target=attack, args=(n,), daemon=True) for n in range(attackers)]
        for thread in threads:
            thread.start()
        health, home = [], []
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            for path_, times in (("/healthz", health), ("/", home)):
                started = time.perf_counter()
                requests.get(url + path_, timeout=60)
                times.append(time.perf_counter() - started)
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(70)
    print(f"\n{attackers} clients searching for {seconds:g} s: search answers {dict(sorted(statuses.items()))}")
    for name, times in (("/healthz", health), ("home page", home)):
        print(f"  {name:10s} p50 {np.percentile(times, 50) * 1000:6.0f} ms  max {max(times) * 1000:6.0f} ms "
              f"({len(times)} requests)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--dev", type=Path, default=ROOT.parent / "shared" / "eval" / "dev.jsonl")
    parser.add_argument("--keep", type=Path, default=None, help="build/reuse the store in this folder")
    parser.add_argument("--web-only", action="store_true", help="only the web front under attack (runs on "
                                                                 "older spsbot versions too)")
    args = parser.parse_args()
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is 2", per request
    if not args.dev.exists():
        args.dev = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"
    folder = args.keep or Path(tempfile.mkdtemp(prefix="spsbot-bench-"))
    path = folder / f"attack-{args.items}.db"
    if not path.exists():
        started = time.perf_counter()
        build_store(path, args.dev, args.items)
        print(f"built store: {args.items:,} items in {time.perf_counter() - started:.1f} s")
    if not args.web_only:
        bare_and_budgeted(path, args.budget)
    under_attack(path, args.attackers, args.seconds)


if __name__ == "__main__":
    main()
