"""Helpers shared by the ClinicalTrials.gov tests: fixture loading and a small config."""

from __future__ import annotations

import copy
import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "ctgov"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def study(nct_id: str) -> dict:
    """A fresh copy of one real single-study fixture."""
    return copy.deepcopy(load(f"study_{nct_id}.json"))


def make_config(tmp_path, base_url: str, condition: str = "", terms=(), page_size: int = 1000,
                feeds: list | None = None, min_interval: float = 0.0):
    """A minimal valid config pointing ClinicalTrials.gov at a local server, with no spacing."""
    from bot.config import load_config
    lines = ["[topic]", 'name = "Test topic"', 'pubmed_query = "test"',
             f"ctgov_condition = {json.dumps(condition)}", f"ctgov_terms = {json.dumps(list(terms))}"]
    if feeds is not None:
        lines.append("feeds = [" + ", ".join(
            "{ url = %s, name = %s }" % (json.dumps(f["url"]), json.dumps(f.get("name", ""))) for f in feeds) + "]")
    lines += ["[sources.clinicaltrials]", f"base_url = {json.dumps(base_url)}", f"page_size = {page_size}",
              f"min_interval = {float(min_interval)}", "overlap_days = 3"]
    path = tmp_path / "test-config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path, env={})
