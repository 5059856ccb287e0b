"""``spsbot demo``: the pipeline on bundled recorded data, with no network and no set-up.

Local emulators on 127.0.0.1 serve the bundled PubMed records (``bot/demo_data/pubmed/``) and
ClinicalTrials.gov studies (``bot/demo_data/ctgov/``, fetched twice: the second time one trial
has changed), the bundled SPS profile is pointed at them, and the real pipeline runs: fetch,
rank with the packaged model, then the digest a subscriber to every theme would get, written
as HTML, text and .eml into the demo folder. The database lives there too, never in the user's
real one. The demo runs on a fixed clock (``DEMO_NOW``, the day after its recorded data ends)
so it shows the same digest whenever it is run.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import ExitStack, contextmanager
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
DEMO_NOW = "2026-11-21T06:00:00+00:00"
DEMO_SUBSCRIBER = "demo@example.org"


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


def fetch_trials(db, config, progress: bool) -> dict:
    """Fetch the bundled trials, then their later version, so the demo records a change event."""
    from bot.fetch.clinicaltrials import replay_demo
    return replay_demo(db, config, progress=progress)


def rank(db, config, progress: bool) -> dict:
    """Score everything stored with the real ranker and the packaged model."""
    from bot.ranking.stage import rank_items
    return rank_items(db, config, progress=progress)


def top_per_theme(db, config, per_theme: int = 3) -> dict[str, list[dict]]:
    """The best relevant items of each theme, with the sentence that earned them their place."""
    from bot.store.ranking import get_scores
    scores = [s for s in get_scores(db).values() if s["relevant"]]
    titles = dict(db.execute("select id, title from items").fetchall())
    top = {}
    for theme in config.theme_names:
        ranked = sorted((s for s in scores if theme in s["labels"]), key=lambda s: -s["themes"].get(theme, 0))
        top[theme] = [{"id": s["item_id"], "title": titles.get(s["item_id"], ""),
                       "score": round(s["themes"].get(theme, 0), 3),
                       "sentence": (s["evidence"].get(theme) or {}).get("sentence", "")}
                      for s in ranked[:per_theme]]
    return top


def write_digest(db, config, out_dir: Path) -> dict:
    """The digest a subscriber to every theme would get now, as .html, .txt and .eml files."""
    from bot.digest.builder import write_preview
    return write_preview(db, config, DEMO_SUBSCRIBER, out_dir, now=DEMO_NOW)


@contextmanager
def demo_clock():
    """Run the stages on the demo's fixed clock (``bot.store.now_iso`` honours SPSBOT_NOW)."""
    saved = os.environ.get("SPSBOT_NOW")
    os.environ["SPSBOT_NOW"] = DEMO_NOW
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("SPSBOT_NOW", None)
        else:
            os.environ["SPSBOT_NOW"] = saved


def run_demo(db_path: str | Path, out_dir: str | Path, progress: bool = False) -> dict:
    """Run the demo; return a summary (also written to ``out_dir/demo-summary.json``)."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"db": str(Path(db_path).resolve()), "out_dir": str(out_dir)}
    db = open_db(db_path)
    try:
        with demo_clock(), ExitStack() as stack:
            server = start_pubmed_server(stack)
            config = demo_config(server.url + "/entrez/eutils")
            summary["pubmed"] = fetch_pubmed(db, config, progress)
            summary["pubmed"]["served_requests"] = len(server.requests)
            summary["trials"] = fetch_trials(db, config, progress)
            summary["stored"] = stored_summary(db)
            summary["rank"] = rank(db, config, progress)
            summary["top"] = top_per_theme(db, config)
            summary["digest"] = write_digest(db, config, out_dir)
    finally:
        db.close()
    (out_dir / "demo-summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    summary["summary_file"] = str(out_dir / "demo-summary.json")
    return summary
