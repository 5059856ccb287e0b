"""`spsbot demo` end to end through the real console script: fetch → trials → rank → digest."""

from __future__ import annotations

import email
import json
import os
import re
import sqlite3
import subprocess
import sys
from email import policy
from pathlib import Path

SPSBOT = Path(sys.executable).parent / "spsbot"


def run_demo(*args, cwd):
    # The user's own settings must not matter: the demo uses its own servers and database.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPSBOT_", "NCBI_"))}
    env.update(SPSBOT_EUTILS_URL="http://127.0.0.1:9/never-used", SPSBOT_DB=str(cwd / "real.db"),
               HF_HUB_OFFLINE="1")
    return subprocess.run([str(SPSBOT), "demo", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_demo_runs_the_whole_pipeline_in_a_fresh_folder(tmp_path):
    result = run_demo(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "spsbot-demo"
    assert "pubmed: fetched 85, new 85" in result.stdout
    assert "clinicaltrials: fetched 6, new 6" in result.stdout
    assert "trial change: NCT03829826 overall_status: UNKNOWN → COMPLETED" in result.stdout
    assert f"demo output written to: {out}" in result.stdout
    assert not (tmp_path / "real.db").exists()          # the user's database was never touched

    with sqlite3.connect(out / "spsbot-demo.db") as conn:
        kinds = dict(conn.execute("select kind, count(*) from items group by kind"))
        assert kinds == {"paper": 85, "trial": 6}
        assert conn.execute("select count(*) from scores").fetchone()[0] == 91
        relevant = conn.execute("select count(*) from scores where relevant = 1").fetchone()[0]
        assert 40 <= relevant < 91                       # near misses and negatives are kept out
        assert conn.execute("select count(*) from trial_changes").fetchone()[0] >= 1

    summary = json.loads((out / "demo-summary.json").read_text(encoding="utf-8"))
    for theme in ("immunomodulation", "symptomatic", "registries", "biomarkers", "diagnosis"):
        assert summary["top"][theme], theme
        assert all(item["sentence"] for item in summary["top"][theme])
    html = Path(summary["digest"]["html"]).read_text(encoding="utf-8")
    assert "Trial changes" in html or "trial changes" in html
    assert "https://pubmed.ncbi.nlm.nih.gov/" in html and "https://clinicaltrials.gov/study/NCT" in html
    message = email.message_from_bytes(Path(summary["digest"]["eml"]).read_bytes(), policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert {part.get_content_type() for part in message.iter_parts()} == {"text/plain", "text/html"}


def test_demo_rerun_into_the_same_folder_adds_nothing(tmp_path):
    first = run_demo("--out", "out", "--db", "demo.sqlite", cwd=tmp_path)
    second = run_demo("--out", "out", "--db", "demo.sqlite", cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    # The second run is incremental: it re-reads only the overlap window and stores nothing new.
    assert re.search(r"^pubmed: fetched \d+, new 0, updated 0", second.stdout, re.M), second.stdout
    assert re.search(r"^clinicaltrials: fetched \d+, new 0, updated 0", second.stdout, re.M), second.stdout
    assert "ranked 0 items" in second.stdout                 # nothing changed: nothing re-scored
    with sqlite3.connect(tmp_path / "demo.sqlite") as conn:
        assert conn.execute("select count(*) from items").fetchone()[0] == 91
        assert conn.execute("select count(*) from trial_changes").fetchone()[0] == 2
    assert (tmp_path / "out" / "demo-summary.json").exists()
