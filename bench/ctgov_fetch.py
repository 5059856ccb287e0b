"""Benchmark: fetch N ClinicalTrials.gov studies from a local v2 emulator, then re-fetch with changes.

Studies are generated from the real recorded shapes in tests/fixtures/ctgov/ (full AACT records
with results sections, fields-filtered biomcp search records), each given a new NCT id. Prints
figures only (no pass/fail):

- requests used for N studies (goal: ⌈N/1000⌉ + 1);
- change events found on a re-fetch where a known number of studies changed one field;
- change-detection time per study (parse + normalise + hash + compare with the stored latest
  version) as a ratio to a bare ``json.loads`` of the same payloads, measured in the same run
  (goal ≤ 3×); and the whole ``save_trials`` (SQLite writes included) for reference.

Usage: .venv/bin/python bench/ctgov_fetch.py [N]
"""

from __future__ import annotations

import copy
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from bot.config import load_config
from bot.fetch import clinicaltrials as fetch_ctgov
from bot.replay import LocalServer
from bot.replay.ctgov import ctgov_responder
from bot.sources.clinicaltrials import parse_study
from bot.store import open_db
from bot.store.trials import diff_snapshots, latest_snapshots, snapshot_hash, tracked_snapshot

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ctgov"
CONDITION = "Benchmark Condition"


def real_shapes() -> list[dict]:
    shapes = []
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        shapes += data["studies"] if "studies" in data else [data]
    return shapes


def generate(n: int) -> list[dict]:
    shapes = real_shapes()
    studies = []
    for i in range(n):
        study = copy.deepcopy(shapes[i % len(shapes)])
        proto = study["protocolSection"]
        proto["identificationModule"]["nctId"] = f"NCT{90000000 + i:08d}"
        proto.setdefault("conditionsModule", {}).setdefault("conditions", []).append(CONDITION)
        studies.append(study)
    return studies


def config_for(url: str, tmp: Path):
    path = tmp / "bench.toml"
    path.write_text(f'[topic]\nname = "bench"\npubmed_query = "x"\nctgov_condition = "{CONDITION}"\n'
                    f'ctgov_terms = []\n[sources.clinicaltrials]\nbase_url = "{url}"\npage_size = 1000\n'
                    f"min_interval = 0.0\n", encoding="utf-8")
    return load_config(path, env={})


def best_of(runs: int, fn) -> float:
    best = math.inf
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def detect(db, loaded: list[dict]) -> int:
    """The change-detection work per fetch: parse, normalise, hash, compare with the latest version."""
    latest = latest_snapshots(db)
    events = 0
    for obj in loaded:
        record = parse_study(obj)
        snapshot = tracked_snapshot(record["extra"])
        previous = latest.get(record["nct_id"])
        if previous is None or previous[0] != snapshot_hash(snapshot):
            events += len(diff_snapshots(previous[1], snapshot)) if previous else 0
    return events


def main(n: int = 5000) -> None:
    studies = generate(n)
    with tempfile.TemporaryDirectory() as tmp, LocalServer(ctgov_responder(studies)) as server:
        db = open_db(Path(tmp) / "bench.db")
        config = config_for(server.url, Path(tmp))
        t0 = time.perf_counter()
        first = fetch_ctgov.run(db, config, full=True).counts
        first_s = time.perf_counter() - t0

        changed = max(1, n // 100)
        for study in studies[:changed]:
            study["protocolSection"]["statusModule"]["overallStatus"] = "SUSPENDED"
        server.requests.clear()
        t0 = time.perf_counter()
        second = fetch_ctgov.run(db, config, full=True).counts
        second_s = time.perf_counter() - t0

        payloads = [json.dumps(s, ensure_ascii=False) for s in studies]
        megabytes = sum(map(len, payloads)) / 1e6
        loads_s = best_of(3, lambda: [json.loads(p) for p in payloads])
        loaded = [json.loads(p) for p in payloads]
        detect_s = best_of(3, lambda: detect(db, loaded))
        db.close()

    goal = math.ceil(n / 1000) + 1
    print(f"studies served: {n} ({megabytes:.1f} MB of JSON, {len(real_shapes())} real shapes)")
    print(f"first fetch: {first['fetched']} stored ({first['new']} new), {first['requests']} requests "
          f"(goal ≤ {goal}), {first_s:.2f} s")
    print(f"re-fetch: {second['fetched']} fetched, {second['new']} new, {second['changes']} change events "
          f"for {changed} changed studies, {second['requests']} requests, {second_s:.2f} s")
    print(f"json.loads: {loads_s / n * 1e6:.1f} µs/study")
    print(f"change detection (parse+normalise+hash+compare): {detect_s / n * 1e6:.1f} µs/study "
          f"= {detect_s / loads_s:.2f}× json.loads (goal ≤ 3×)")
    print(f"whole re-fetch incl. HTTP + SQLite writes: {second_s / n * 1e6:.0f} µs/study "
          f"= {second_s / loads_s:.1f}× json.loads")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
