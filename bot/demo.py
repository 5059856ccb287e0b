"""``spsbot demo``: the pipeline on bundled recorded data, with no network and no set-up.

A local E-utilities emulator on 127.0.0.1 serves the bundled PubMed records
(``bot/demo_data/pubmed/``), the bundled SPS profile is pointed at it, and the real fetch code
stores them in a database inside the demo folder (never the user's real database). Each stage
is one small function, so later stages (trials, rank, digest) slot in as further steps.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from importlib import resources
from pathlib import Path

from bot.config import load_config
from bot.fetch import fetch_all
from bot.replay import LocalServer
from bot.replay.eutils import eutils_responder
from bot.sources.pubmed import make_client
from bot.store import now_iso, open_db

log = logging.getLogger(__name__)
# The bundled records' Entrez dates end here; a demo run on an earlier clock still sees them all.
DEMO_DATA_END = "2026/11/20"


def demo_data_dir(source: str = "pubmed") -> Path:
    """Where the bundled demo records for ``source`` live (inside the installed package)."""
    return Path(str(resources.files("bot").joinpath("demo_data", source)))


def start_pubmed_server(stack: ExitStack) -> LocalServer:
    """Serve the bundled PubMed records from an E-utilities emulator until ``stack`` closes."""
    return stack.enter_context(LocalServer(eutils_responder(demo_data_dir("pubmed"))))


def demo_config(pubmed_url: str):
    """The bundled SPS profile, ignoring the user's environment, pointed at the local servers."""
    config = load_config(None, env={})
    config.sections["sources.pubmed"]["base_url"] = pubmed_url
    return config


def fetch_pubmed(db, config, progress: bool) -> dict:
    """Run the real PubMed fetch step against the emulator (no request spacing needed locally)."""
    client = make_client(config, env={}, min_interval=0)
    window_end = max(now_iso()[:10].replace("-", "/"), DEMO_DATA_END)
    result = fetch_all(db, config, ["pubmed"], progress=progress,
                       pubmed={"client": client, "window_end": window_end})
    if result.errors:
        raise RuntimeError(f"demo fetch failed: {result.errors}")
    return result.counts["pubmed"]


def stored_summary(db) -> dict:
    """What the database now holds: item counts and the most recently indexed papers."""
    recent = db.execute("select id, entrez_date, title from items where kind = 'paper' "
                        "order by entrez_date desc, id limit 5").fetchall()
    return {"items": db["items"].count,
            "papers": db.execute("select count(*) from items where kind = 'paper'").fetchone()[0],
            "recent": [{"id": i, "entrez_date": d, "title": t} for i, d, t in recent]}


def run_demo(db_path: str | Path, out_dir: str | Path, progress: bool = False) -> dict:
    """Run the demo; return a summary (also written to ``out_dir/demo-summary.json``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"db": str(db_path), "out_dir": str(out_dir)}
    db = open_db(db_path)
    try:
        with ExitStack() as stack:
            server = start_pubmed_server(stack)
            config = demo_config(server.url + "/entrez/eutils")
            summary["pubmed"] = fetch_pubmed(db, config, progress)
            summary["pubmed"]["served_requests"] = len(server.requests)
        summary["stored"] = stored_summary(db)
    finally:
        db.close()
    (out_dir / "demo-summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    summary["summary_file"] = str(out_dir / "demo-summary.json")
    return summary
