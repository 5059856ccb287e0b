"""Helpers for the maintainer-path tests (issue 13): a fake embedding model for the store's
ranker, and checksums of every table of a database file (what a dry run must leave alone)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from pathlib import Path

from conftest import FakeEmbedder


def use_fake_model(monkeypatch, model_name: str | None = None) -> FakeEmbedder:
    """Make every ``load_embedder`` (rank, run, label --review) return one hashed bag-of-words
    embedder: fast, deterministic, no torch. ``model_name`` pretends to be another model."""
    import bot.ranking.embedder
    fake = FakeEmbedder()
    if model_name:
        fake.model_name = model_name
    monkeypatch.setattr(bot.ranking.embedder, "load_embedder", lambda model="": fake)
    return fake


def table_checksums(path) -> dict[str, str]:
    """sha256 of every table's rows (order-free), read through a separate connection."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table' order by name")]
        return {name: hashlib.sha256("\n".join(sorted(repr(row) for row in conn.execute(
            f'select * from "{name}"'))).encode()).hexdigest() for name in names}
    finally:
        conn.close()


def newest_demo_articles(count: int) -> list[str]:
    """The ``count`` bundled demo PubMed records with the latest Entrez dates (this week's news
    on the pinned clock), as article XML for ``eutils_responder``."""
    from bot.replay import demo_data_dir
    from bot.replay.eutils import article_key, load_articles
    articles = load_articles(demo_data_dir("pubmed"))
    return sorted(articles, key=lambda a: article_key(a)[1], reverse=True)[:count]


def start_pubmed(stack, articles):
    """A local E-utilities emulator serving ``articles`` until ``stack`` closes."""
    from bot.replay import LocalServer
    from bot.replay.eutils import eutils_responder
    return stack.enter_context(LocalServer(eutils_responder(articles)))


SCHEDULES = Path(__file__).parent.parent / "schedules"


def crontab_line() -> str:
    """The one job line of schedules/crontab (comments and NAME=value settings left out)."""
    lines = [line for line in (SCHEDULES / "crontab").read_text().splitlines()
             if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert len(lines) == 1
    return lines[0]


def workflow() -> dict:
    """schedules/github-actions-weekly.yml, parsed."""
    import yaml
    return yaml.safe_load((SCHEDULES / "github-actions-weekly.yml").read_text())


def workflow_step(name: str) -> dict:
    """The weekly job's step called ``name``."""
    return next(s for s in workflow()["jobs"]["run"]["steps"] if s.get("name") == name)


def run_workflow_step(name: str, cwd, env: dict) -> subprocess.CompletedProcess:
    """Run the step's own `run:` script as the runner does (bash -e, in the workspace ``cwd``)
    with only PATH and ``env`` set."""
    return subprocess.run(["bash", "-e", "-c", workflow_step(name)["run"]], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PATH": os.environ["PATH"], **env})
