"""The fetch stage: run every configured source, store what it returns, record each run.

``bot/sources/`` talks to one service (HTTP + parsing, no database code); ``bot/fetch/`` is the
stage that stores what the sources return. Each source has a module here with
``run(db, config, *, full=False, progress=False, **options) -> SourceResult`` that reads its
incremental state, pulls records from ``bot.sources.<source>``, saves them through ``bot.store``
and returns its counts (``fetched``, ``new``, ``updated``, ``unchanged`` and anything
source-specific) and what failed along the way. ``bot.fetch.registry.SOURCES`` describes every
source. One failing source does not stop the others: the fetch is then *partial*.
"""

from __future__ import annotations

import logging
import time

from bot.errors import one_line
from bot.fetch.registry import SOURCES, enabled_sources
from bot.fetch.results import PARTIAL, FetchResult, SourceResult
from bot.sources.http import limits, limits_from_config
from bot.store import recorded_run

__all__ = ["fetch_all", "FetchResult", "SourceResult", "SOURCES", "enabled_sources"]

log = logging.getLogger(__name__)


def fetch_all(db, config, sources: list[str] | None = None, *, full: bool = False,
              progress: bool = False, **options) -> FetchResult:
    """Run the given (default: all enabled) sources; never let one failure stop the rest.

    Every request obeys ``[http]`` (request deadline, response size cap; bot/sources/http.py).
    ``options``: per-source keyword arguments for its ``run`` (``pubmed={"client": …}``).
    """
    with limits(**limits_from_config(config)):
        return _fetch_sources(db, config, sources, full=full, progress=progress, **options)


def _fetch_sources(db, config, sources, *, full: bool, progress: bool, **options) -> FetchResult:
    fetched = FetchResult()
    for name in sources or enabled_sources(config):
        if name not in SOURCES:
            raise ValueError(f"unknown source {name!r} (known: {', '.join(SOURCES)})")
        started = time.monotonic()
        try:
            with recorded_run(db, "fetch", name) as run:
                result = SOURCES[name].fetch(db, config, full=full, progress=progress, **options.get(name, {}))
                run.counts.update(result.counts)
                run.status, run.error = result.status, result.error
        except Exception as e:  # noqa: BLE001 - recorded in runs; the other sources go on
            fetched.results[name] = SourceResult(failure=one_line(e))
            log.error("fetch %s failed after %.1fs: %s", name, time.monotonic() - started,
                      fetched.results[name].failure)
            continue
        fetched.results[name] = result
        if result.status == PARTIAL:
            # The source kept going past a failed batch or feed: the fetch as a whole is partial.
            log.warning("fetch %s partial: %s", name, result.problem_line)
        log.info("fetch %s: %s in %.1fs", name,
                 ", ".join(f"{k} {v}" for k, v in result.counts.items() if isinstance(v, (int, float))),
                 time.monotonic() - started)
    return fetched

