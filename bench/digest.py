"""Benchmark: build, render and send digests to 1,000 subscribers through a local aiosmtpd server.

200 items (real SPS titles and texts from /work/shared/eval/dev.jsonl when present, scored with
varied themes) and 1,000 subscribers with varied theme choices and caps. Prints figures only
(no pass/fail):

- build + render + store + send, messages per second (the whole digest stage as ``spsbot run``
  does it, outbox bookkeeping included);
- bare ``smtplib.SMTP.send_message`` of the same pre-rendered messages over one connection to
  the same server, messages per second;
- the ratio of the two (goal ≥ 0.5), measured in the same run.

The server (aiosmtpd) runs in its own process and only counts messages.

Each round uses a fresh database; the ratio is printed per round and as the median (the
machine is shared, so wall-clock figures drift between measurements). Client CPU time is
printed too: it does not count time spent waiting for the server or for other processes.

Usage: .venv/bin/python bench/digest.py [SUBSCRIBERS] [ITEMS] [ROUNDS]
"""

from __future__ import annotations

import email
import email.policy
import json
import multiprocessing
import os
import random
import smtplib
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiosmtpd.controller import Controller

NOW = "2026-11-23T06:00:00+00:00"
os.environ["SPSBOT_NOW"] = NOW

from bot.config import load_config  # noqa: E402
from bot.digest.builder import build_digests  # noqa: E402
from bot.digest.send import message_for, send_pending  # noqa: E402
from bot.store import open_db, save_items  # noqa: E402
from bot.store import digests as store  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"


class CountingHandler:
    """Accepts everything and only counts: the server's cost is the same for both measurements."""

    def __init__(self, counter):
        self.counter = counter

    async def handle_DATA(self, server, session, envelope):
        with self.counter.get_lock():
            self.counter.value += 1
        return "250 OK"


def serve(port: int, counter, ready, stop) -> None:
    """The SMTP server in its own process, so it does not share the sender's interpreter lock."""
    controller = Controller(CountingHandler(counter), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def texts(n: int) -> list[tuple[str, str]]:
    rows = []
    if DEV.exists():
        for line in DEV.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            rows.append((record["title"], record.get("text") or ""))
    while len(rows) < n:
        rows.append((f"Synthetic item {len(rows)}", "Stiff person syndrome & anti-GAD65 <antibodies>."))
    return rows[:n]


def seed(db, config, n_items: int, n_subscribers: int, rng: random.Random) -> None:
    themes = config.theme_names
    records, scores = [], []
    for i, (title, text) in enumerate(texts(n_items)):
        day = 17 + i % 7
        chosen = rng.sample(themes, rng.randint(1, 3))
        records.append({"kind": "paper", "pmid": str(40000000 + i), "title": title, "abstract": text,
                        "pub_date": f"2026-11-{day:02d}", "entrez_date": f"2026-11-{day:02d}",
                        "authors": ["Dalakas MC", "Li M", "Smith J", "Brown K"][: rng.randint(1, 4)],
                        "journal": "J Neurol", "pub_types": rng.choice([["Journal Article"], ["Case Reports"],
                                                                        ["Review"], ["Randomized Controlled Trial"]]),
                        "doi": f"10.1000/sps.{i}"})
        sentence = (text.split(". ")[0] or title)[:300]
        scores.append({"item_id": f"pmid:{40000000 + i}", "relevance": rng.random(), "relevant": 1,
                       "themes": json.dumps({t: rng.uniform(0.5, 1) for t in chosen}), "labels": json.dumps(chosen),
                       "why": "bench",
                       "evidence": json.dumps({t: {"sentence": sentence, "terms": []} for t in chosen})})
    save_items(db, records, source="pubmed", now=NOW)
    with db.atomic():
        db["scores"].insert_all(scores, pk="item_id")
        db["subscribers"].insert_all([{
            "email": f"reader{i}@example.org", "name": f"Reader {i}",
            "themes": None if i % 4 == 0 else json.dumps(sorted(rng.sample(themes, rng.randint(1, 3)))),
            "frequency": "weekly", "max_items": rng.choice([10, 20, 20, 50]), "send_empty": 0, "status": "active",
            "bounces": 0, "created_at": NOW, "updated_at": NOW} for i in range(n_subscribers)])


def clocks():
    return time.perf_counter(), time.process_time()


def one_round(config, port: int, n_items: int, n_subscribers: int) -> dict:
    """One full measurement on a fresh database: our build + send, then the bare baseline."""
    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "bench.db")
        seed(db, config, n_items, n_subscribers, random.Random(5))
        wall, cpu = clocks()
        built = build_digests(db, config)
        build_wall, build_cpu = clocks()
        pending = store.pending_deliveries(db)  # kept for the bare baseline below
        result = send_pending(db, config)
        send_wall, send_cpu = clocks()
        # the baseline gets the same messages as parsed email objects, ready for send_message
        messages = [email.message_from_bytes(message_for(d, config), policy=email.policy.SMTP) for d in pending]
        sizes = sorted(len(message_for(d, config)) for d in pending[:200])
        db.close()
    bare_start = clocks()
    with smtplib.SMTP("127.0.0.1", port) as conn:
        for message, delivery in zip(messages, pending):
            conn.send_message(message, from_addr="spsbot@localhost", to_addrs=[delivery["email"]])
    bare_end = clocks()
    return {"built": len(built.built), "sent": result.sent, "messages": len(messages),
            "build_s": build_wall - wall, "send_s": send_wall - build_wall,
            "ours_cpu": send_cpu - cpu, "send_cpu": send_cpu - build_cpu,
            "bare_s": bare_end[0] - bare_start[0], "bare_cpu": bare_end[1] - bare_start[1],
            "median_kib": sizes[len(sizes) // 2] / 1024}


def main() -> None:
    n_subscribers = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    n_items = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    port = free_port()
    counter, ready, stop = multiprocessing.Value("i", 0), multiprocessing.Event(), multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, counter, ready, stop), daemon=True)
    server.start()
    ready.wait(30)
    os.environ["SPSBOT_SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    config = load_config()
    try:
        results = [one_round(config, port, n_items, n_subscribers) for _ in range(rounds)]
    finally:
        stop.set()
        server.join(30)
    print(f"subscribers {n_subscribers}, items {n_items}, rounds {rounds}, server received {counter.value} "
          f"(= rounds x 2 x {n_subscribers}); median message {results[0]['median_kib']:.1f} KiB")
    ratios, cpu_ratios = [], []
    for i, r in enumerate(results, 1):
        ours, bare = r["sent"] / (r["build_s"] + r["send_s"]), r["messages"] / r["bare_s"]
        ratios.append(ours / bare)
        cpu_ratios.append(r["bare_cpu"] / r["ours_cpu"])
        print(f"round {i}: build+render+store {r['build_s']:.2f} s ({r['built'] / r['build_s']:.0f} digests/s), "
              f"outbox send {r['send_s']:.2f} s ({r['sent'] / r['send_s']:.0f} msg/s); "
              f"spsbot build+render+send {ours:.0f} msg/s; bare smtplib.send_message {bare:.0f} msg/s; "
              f"ratio {ours / bare:.2f} (send step alone {(r['sent'] / r['send_s']) / bare:.2f}); "
              f"client CPU ratio {r['bare_cpu'] / r['ours_cpu']:.2f}")
    print(f"ratio spsbot / bare (wall clock, goal >= 0.5): median {statistics.median(ratios):.2f} "
          f"over {rounds} round(s); client-CPU ratio median {statistics.median(cpu_ratios):.2f} "
          f"(less sensitive to other load on the machine)")


if __name__ == "__main__":
    main()
