"""Fetch stage: run every configured source, store what it yields, record each run.

Each source has a module here with ``run(db, config, *, full=False, progress=False, **options)``
that reads its incremental state, pulls records from ``bot.sources.<source>`` (pure HTTP +
parsing, no database code), saves them through ``bot.store`` and returns counts
(``fetched``, ``new``, ``updated``, ``unchanged`` and anything source-specific). One failing
source does not stop the others: the fetch is then *partial*.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field

from bot.store import recorded_run
from bot.errors import one_line

log = logging.getLogger(__name__)

# Source name -> module (in bot.fetch) and whether the config enables it.
SOURCES = {
    "pubmed": "bot.fetch.pubmed",
    "clinicaltrials": "bot.fetch.clinicaltrials",
    "feeds": "bot.fetch.feeds",
}


@dataclass
class FetchResult:
    counts: dict[str, dict] = field(default_factory=dict)   # source -> counts
    errors: dict[str, str] = field(default_factory=dict)    # source -> one-line error

    @property
    def status(self) -> str:
        if not self.errors:
            return "ok"
        return "partial" if self.counts else "failed"

    @property
    def new_items(self) -> int:
        return sum(c.get("new", 0) for c in self.counts.values())


def enabled_sources(config) -> list[str]:
    names = []
    if config.pubmed.get("enabled", True) and config.topic.pubmed_query:
        names.append("pubmed")
    if config.clinicaltrials.get("enabled", True) and (config.topic.ctgov_condition or config.topic.ctgov_terms):
        names.append("clinicaltrials")
    if config.topic.feeds:
        names.append("feeds")
    return names


def fetch_all(db, config, sources: list[str] | None = None, *, full: bool = False,
              progress: bool = False, **options) -> FetchResult:
    """Run the given (default: all enabled) sources; never let one failure stop the rest.

    Every request obeys ``[http]`` (request deadline, response size cap; bot/sources/http.py).
    """
    from bot.sources.http import limits, limits_from_config
    with limits(**limits_from_config(config)):
        return _fetch_sources(db, config, sources, full=full, progress=progress, **options)


def _fetch_sources(db, config, sources, *, full: bool, progress: bool, **options) -> FetchResult:
    result = FetchResult()
    for name in sources or enabled_sources(config):
        if name not in SOURCES:
            raise ValueError(f"unknown source {name!r} (known: {', '.join(SOURCES)})")
        module = importlib.import_module(SOURCES[name])
        started = time.monotonic()
        try:
            with recorded_run(db, "fetch", name) as counts:
                returned = module.run(db, config, full=full, progress=progress, **options.get(name, {}))
                counts.update(returned)
        except Exception as e:  # noqa: BLE001 - recorded in runs; the other sources go on
            result.errors[name] = one_line(e)
            log.error("fetch %s failed after %.1fs: %s", name, time.monotonic() - started, result.errors[name])
            continue
        result.counts[name] = counts
        if returned.get("_status") == "partial":
            # The source kept going past a failed batch or feed: the fetch as a whole is partial.
            problems = returned.get("feed_errors") or [returned.get("_error")
                                                       or f"{returned.get('errors', 'some')} batch(es) failed"]
            result.errors[name] = "; ".join(map(str, problems))[:500]
            log.warning("fetch %s partial: %s", name, result.errors[name])
        log.info("fetch %s: %s in %.1fs", name,
                 ", ".join(f"{k} {v}" for k, v in counts.items() if isinstance(v, (int, float))),
                 time.monotonic() - started)
    return result
