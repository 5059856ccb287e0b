"""``spsbot demo``: the pipeline on bundled recorded data, with no network and no set-up.

Local emulators on 127.0.0.1 serve the bundled PubMed records (``bot/demo_data/pubmed/``) and
ClinicalTrials.gov studies (``bot/demo_data/ctgov/``, fetched twice: the second time one trial
has changed), the bundled SPS profile is pointed at them, and the real pipeline runs: fetch,
rank with the packaged model, then the digest a subscriber to every theme would get, written
as HTML, text and .eml into the demo folder, in both styles (clinical, and plain words). The
database lives there too, never in the user's real one. The demo runs on a fixed clock
(``DEMO_NOW``, the day after its recorded data ends) so it shows the same digest whenever it is run.

With a profile of the user's (``--config`` / ``SPSBOT_CONFIG``) the same bundled records are
fetched as always and then ranked and digested under that profile, so a new topic's maintainer
can watch their phrases, terms and themes at work; the records stay SPS ones, and the command
says so.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bot.config import load_config
from bot.fetch import SOURCES, fetch_all
from bot.replay import LocalServer
from bot.sources.pubmed import configured_client
from bot.store import now_iso, open_db
from bot.store.overview import item_counts, newest_papers
from bot.store.overview import titles as item_titles
from bot.store.trials import trial_changes_since

log = logging.getLogger(__name__)
# The bundled records' Entrez dates end here; a demo run on an earlier clock still sees them all.
DEMO_DATA_END = "2026/11/20"
DEMO_NOW = "2026-11-21T06:00:00+00:00"
DEMO_SUBSCRIBER = "demo@example.org"


def start_pubmed_server(stack: ExitStack) -> LocalServer:
    """Serve the bundled PubMed records from an E-utilities emulator until ``stack`` closes."""
    return stack.enter_context(LocalServer(SOURCES["pubmed"].demo_responder()))


def demo_config(pubmed_url: str):
    """The bundled SPS profile, ignoring the user's environment, pointed at the local servers."""
    config = load_config(None, env={})
    config.sections["sources.pubmed"]["base_url"] = pubmed_url
    return config


def fetch_pubmed(db, config, progress: bool) -> dict:
    """Run the real PubMed fetch step against the emulator (no request spacing needed locally)."""
    client = configured_client(config, env={}, min_interval=0)
    window_end = max(now_iso()[:10].replace("-", "/"), DEMO_DATA_END)
    result = fetch_all(db, config, ["pubmed"], progress=progress,
                       pubmed={"client": client, "window_end": window_end})
    if result.errors:
        raise RuntimeError(f"demo fetch failed: {result.errors}")
    return result.counts["pubmed"]


def stored_summary(db) -> dict:
    """What the database now holds: item counts and the most recently indexed papers."""
    return {**item_counts(db), "recent": newest_papers(db)}


def fetch_trials(db, config, progress: bool = False) -> dict:
    """The demo's trial step: fetch the bundled trials from a local CT.gov emulator, then their
    later version (one trial changed status and posted results), through ``fetch_all`` so both
    runs are recorded and the change event is detected. Returns {"first": counts, "second":
    counts, "changes": [events]}.

    ``config`` is changed in place to point at the emulator (the demo's own config copy).
    """
    source = SOURCES["clinicaltrials"]
    started = now_iso()
    summary: dict = {}
    for version, key in ((1, "first"), (2, "second")):
        with LocalServer(source.demo_responder(version)) as server:
            config.sections[source.settings]["base_url"] = server.url
            result = fetch_all(db, config, [source.name], progress=progress,
                               clinicaltrials={"min_interval": 0})
        if result.errors:
            raise RuntimeError(f"demo trials fetch failed: {result.errors}")
        summary[key] = result.counts[source.name]
    summary["changes"] = trial_changes_since(db, started)
    return summary


def rank(db, config, progress: bool) -> dict:
    """Score everything stored with the real ranker and the packaged model."""
    from bot.ranking.stage import rank_items
    return rank_items(db, config, progress=progress)


def top_per_theme(db, config, per_theme: int = 3) -> dict[str, list[dict]]:
    """The best relevant items of each theme, with the sentence that earned them their place."""
    from bot.store.ranking import get_scores
    scores = [s for s in get_scores(db).values() if s["relevant"]]
    best = {theme: sorted((s for s in scores if theme in s["labels"]),
                          key=lambda s: -s["themes"].get(theme, 0))[:per_theme] for theme in config.theme_names}
    titles = item_titles(db, {s["item_id"] for shown in best.values() for s in shown})
    return {theme: [{"id": s["item_id"], "title": titles.get(s["item_id"], ""),
                     "score": round(s["themes"].get(theme, 0), 3),
                     "sentence": (s["evidence"].get(theme) or {}).get("sentence", "")}
                    for s in shown]
            for theme, shown in best.items()}


def write_digest(db, config, out_dir: Path, style: str = "clinical") -> dict:
    """The digest a subscriber to every theme would get now, as .html, .txt and .eml files, in
    ``style`` ("clinical", or "plain": the plain-words digest a patient can choose)."""
    from bot.digest.builder import write_preview
    return write_preview(db, config, DEMO_SUBSCRIBER, out_dir, now=DEMO_NOW, style=style)


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


def run_demo(db_path: str | Path, out_dir: str | Path, progress: bool = False, profile=None) -> dict:
    """Run the demo; return a summary (also written to ``out_dir/demo-summary.json``).

    ``profile``: the user's configuration, under which the bundled records are ranked and
    digested (None: the bundled SPS profile does everything)."""
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
            ranking = profile or config
            summary["profile"] = {"topic": ranking.topic.name, "path": profile.path if profile else None}
            summary["rank"] = rank(db, ranking, progress)
            summary["top"] = top_per_theme(db, ranking)
            summary["digest"] = write_digest(db, ranking, out_dir)
            summary["digest_plain"] = write_digest(db, ranking, out_dir, style="plain")
    finally:
        db.close()
    (out_dir / "demo-summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    summary["summary_file"] = str(out_dir / "demo-summary.json")
    return summary
