"""`spsbot demo` end to end through the real console script: fetch → trials → rank → digest.

The demo runs twice in one folder (module fixture): the first run is a fresh install's, the
second the re-run of a user who calls it again, with --out/--db naming the same places.
"""

from __future__ import annotations

import email
import html as html_lib
import json
import re
import sqlite3
from email import policy
from pathlib import Path

from bot.config import load_config

import pytest
from conftest import clean_env, spsbot


def run_demo(*args, cwd, **env_extra):
    # The user's own settings must not matter: the demo uses its own servers, clock and database.
    env = clean_env(cwd, SPSBOT_EUTILS_URL="http://127.0.0.1:9/never-used", SPSBOT_DB=cwd / "real.db", **env_extra)
    env.pop("SPSBOT_NOW", None)
    return spsbot("demo", *args, env=env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    first = run_demo(cwd=folder)
    second = run_demo("--out", "spsbot-demo", "--db", "spsbot-demo/spsbot-demo.db", cwd=folder)
    return folder, first, second


def test_demo_runs_the_whole_pipeline_in_a_fresh_folder(demo_runs):
    folder, result, _ = demo_runs
    assert result.returncode == 0, result.stderr
    out = folder / "spsbot-demo"
    assert "pubmed: fetched 85, new 85" in result.stdout
    assert "clinicaltrials: fetched 6, new 6" in result.stdout
    assert "trial change: NCT03829826 overall_status: UNKNOWN → COMPLETED" in result.stdout
    assert f"demo output written to: {out}" in result.stdout
    assert not (folder / "real.db").exists()          # the user's database was never touched

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
    # The plain-words digest a patient can choose, beside it: the same items under plain headings.
    plain_html = Path(summary["digest_plain"]["html"]).read_text(encoding="utf-8")
    plain_title = next(t.plain_title for t in load_config().themes if t.name == "immunomodulation")
    assert summary["digest_plain"]["html"].endswith("-plain.html") and summary["digest_plain"]["items"] == \
        summary["digest"]["items"]
    assert html_lib.escape(plain_title) in plain_html and html_lib.escape(plain_title) not in html
    assert Path(summary["digest_plain"]["text"]).read_text(encoding="utf-8") != \
        Path(summary["digest"]["text"]).read_text(encoding="utf-8")


def test_demo_rerun_into_the_same_folder_adds_nothing(demo_runs):
    folder, first, second = demo_runs
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    # The second run is incremental: it re-reads only the overlap window and stores nothing new.
    assert re.search(r"^pubmed: fetched \d+, new 0, updated 0", second.stdout, re.M), second.stdout
    assert re.search(r"^clinicaltrials: fetched \d+, new 0, updated 0", second.stdout, re.M), second.stdout
    assert "ranked 0 items" in second.stdout                 # nothing changed: nothing re-scored
    assert f"demo output written to: {folder / 'spsbot-demo'}" in second.stdout  # --out was honoured
    with sqlite3.connect(folder / "spsbot-demo" / "spsbot-demo.db") as conn:
        assert conn.execute("select count(*) from items").fetchone()[0] == 91
        assert conn.execute("select count(*) from trial_changes").fetchone()[0] == 2
    assert (folder / "spsbot-demo" / "demo-summary.json").exists()


def test_demo_ranks_the_bundled_records_under_the_users_profile(demo_runs):
    folder, first, _ = demo_runs
    assert "profile: the bundled SPS profile" in first.stdout
    profile = folder / "mg.toml"
    made = spsbot("init", "Myasthenia gravis", "--acronym", "MG", "-o", str(profile), env=clean_env(folder),
                  cwd=folder, timeout=60)
    assert made.returncode == 0, made.stderr
    # the demo's database again: nothing new is fetched, its vectors are cached, only the scores change
    result = run_demo("--db", "spsbot-demo/spsbot-demo.db", "--out", "mg-demo", cwd=folder, SPSBOT_CONFIG=profile)
    assert result.returncode == 0, result.stderr
    assert "profile: Myasthenia gravis" in result.stdout and "records are SPS papers and trials" in result.stdout
    assert "ranked 91 items:" in result.stdout and "relevant to Myasthenia gravis" in result.stdout
    summary = json.loads((folder / "mg-demo" / "demo-summary.json").read_text(encoding="utf-8"))
    assert summary["profile"]["topic"] == "Myasthenia gravis"
    assert set(summary["top"]) == {"treatment", "diagnosis", "cohorts"}  # the profile's themes, not SPS's
    assert summary["digest"]["subject"].startswith("MG digest")
