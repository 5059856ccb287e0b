"""Shared pieces of the fault suite: a responder that misbehaves on cue, fixed data, DB snapshots.

Every fault is served by a real HTTP server on 127.0.0.1 (``bot.replay.LocalServer``); the
``Faulty`` wrapper passes requests to a healthy emulator except on the calls it was told to spoil.
"""

from __future__ import annotations

import threading

from bot.replay import Request, Response
from bot.replay.eutils import load_articles

# The bundled demo records (85 real SPS PubMed articles, Entrez dates 2024/11 .. 2026/11/20).
DEMO_END = "2026/11/20"
SEED_END = "2026/06/30"   # a first, healthy run stops here; the faulty run covers the rest


def demo_articles() -> list[str]:
    from bot.replay import demo_data_dir
    return load_articles(demo_data_dir("pubmed"))


def endpoint_of(request: Request) -> str:
    """'esearch' / 'efetch' for E-utilities paths, 'studies' for CT.gov."""
    return request.path.rstrip("/").rsplit("/", 1)[-1].replace(".fcgi", "")


class Faulty:
    """Wrap a healthy responder: from the ``at``-th call of ``endpoint`` on, serve ``responses``
    one per call (then behave again); ``persistent=True`` serves the last one forever."""

    def __init__(self, inner, endpoint: str, responses: list[Response], at: int = 1, persistent: bool = False):
        self.inner, self.endpoint, self.at, self.persistent = inner, endpoint, at, persistent
        self.queue = list(responses)
        self.calls = 0
        self.served_faults = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self._lock:
            if endpoint_of(request) == self.endpoint:
                self.calls += 1
                if self.calls >= self.at and self.queue:
                    self.served_faults += 1
                    return self.queue[0] if self.persistent and len(self.queue) == 1 else self.queue.pop(0)
        return self.inner(request)


class Sleeps:
    """A ``sleep`` that records what it was asked to wait and never waits (tests run at full speed)."""

    def __init__(self):
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def snapshot(db) -> dict[str, str]:
    """id -> content_hash of every stored item: a later run must keep each of these unchanged."""
    return {row["id"]: row["content_hash"] for row in db.query("select id, content_hash from items")}


def integrity(db) -> str:
    return db.execute("PRAGMA integrity_check").fetchone()[0]


# --- the real command line, as a subprocess ---------------------------------------------------

def error_lines(stderr: str) -> list[str]:
    """stderr without log lines (``2026-… LEVEL name: …``): what the user is told."""
    import re
    return [line for line in stderr.splitlines()
            if line.strip() and not re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ", line)]


def queue_digests(db_path, emails=("ann@example.org",)) -> None:
    """A seeded store with subscribers and their digests built: pending deliveries in the outbox."""
    from bot.config import load_config
    from bot.digest.builder import build_digests
    from bot.digest.subscribers import add_subscriber
    from bot.store import open_db
    from digest_support import NOW, paper, seed
    db = open_db(db_path)
    seed(db, [paper(1, "Rituximab in stiff person syndrome"), paper(2, "GAD65 antibody titres and IVIG")])
    config = load_config(env={})
    for address in emails:
        add_subscriber(db, address, valid_themes=config.theme_names)
    build_digests(db, config, now=NOW)  # the clock the papers were seeded on
    db.close()


def delivery_statuses(db_path) -> dict[str, str]:
    from bot.store import open_db
    db = open_db(db_path)
    try:
        return {r[0]: r[1] for r in db.execute(
            "select s.email, d.status from deliveries d join subscribers s on s.id = d.subscriber_id")}
    finally:
        db.close()
