"""The README's sample output blocks marked ``<!-- real output: … -->`` are what the command
prints: each is compared, line for line, with the real command run on a store built to the
situation the sample describes (issue 25: the `status` sample showed lines no longer printed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bot.store import open_db, save_items

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = re.compile(r"<!-- real output: (?P<name>[^>]*?) -->\n```console\n(?P<block>.*?)```", re.S)


def marked_blocks() -> dict[str, str]:
    return {m["name"]: m["block"] for m in MARK.finditer(README.read_text(encoding="utf-8"))}


def _run(db, command, source, started, finished, duration, status, counts=None, error=None):
    db["runs"].insert({"command": command, "source": source, "started": started, "finished": finished,
                       "duration_s": duration, "status": status, "counts": json.dumps(counts or {}),
                       "error": error})


def status_store(path: Path) -> None:
    """A Monday after the weekly run: PubMed's name lookup failed this morning (it worked last
    week), ClinicalTrials.gov worked."""
    db = open_db(path)
    last_week, today = "2026-11-16T06:15:02+00:00", "2026-11-23T06:15:02+00:00"
    save_items(db, [{"kind": "paper", "pmid": str(n), "title": f"Paper {n}", "source": "pubmed"} for n in range(3)],
               now=last_week)
    save_items(db, [{"kind": "trial", "nct_id": f"NCT0000000{n}", "title": f"Trial {n}", "source": "ctgov"}
                    for n in range(2)], now="2026-11-23T06:15:10+00:00")
    _run(db, "fetch", "pubmed", last_week, "2026-11-16T06:15:43+00:00", 41.2, "ok", {"new": 3, "updated": 1})
    _run(db, "fetch", "clinicaltrials", "2026-11-16T06:15:44+00:00", "2026-11-16T06:15:56+00:00", 12.0, "ok",
         {"new": 0, "updated": 0})
    _run(db, "run", None, "2026-11-16T06:15:00+00:00", "2026-11-16T06:17:10+00:00", 130.0, "ok")
    _run(db, "fetch", "pubmed", today, "2026-11-23T06:15:07+00:00", 5.1, "failed", error=(
        "SourceError: pubmed https://eutils.ncbi.nlm.nih.gov/entrez/eutils/esearch.fcgi: connection failed: "
        "Failed to resolve 'eutils.ncbi.nlm.nih.gov' ([Errno -3] Temporary failure in name resolution) "
        "(gave up after 5 attempts)"))
    _run(db, "fetch", "clinicaltrials", "2026-11-23T06:15:08+00:00", "2026-11-23T06:15:20+00:00", 12.0, "ok",
         {"new": 2, "updated": 1})
    _run(db, "run", None, "2026-11-23T06:15:00+00:00", "2026-11-23T06:16:02+00:00", 62.0, "partial")
    db["subscribers"].insert_all([{"email": f"s{n}@example.org", "status": "active"} for n in range(2)]
                                 + [{"email": "gone@example.org", "status": "unsubscribed"}])
    db.close()


def test_the_status_sample_is_real_output(tmp_path):
    from conftest import clean_env, spsbot
    block = marked_blocks()["spsbot status"]
    command, *expected = block.rstrip("\n").split("\n")
    assert command == "$ spsbot status"
    *expected, echo, code = expected
    assert echo == "$ echo $?"
    status_store(tmp_path / "spsbot.db")
    result = spsbot("status", env=clean_env(tmp_path, SPSBOT_NOW="2026-11-23T08:00:00+00:00"))
    assert result.stdout.rstrip("\n").split("\n") == expected, result.stdout
    assert str(result.returncode) == code


def test_every_marked_block_is_compared():
    """A block newly marked as real output needs its comparison here (none is marked by mistake)."""
    assert set(marked_blocks()) == {"spsbot status"}
