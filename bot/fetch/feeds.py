"""Fetch every configured RSS/Atom feed and store its entries as papers.

Feeds are read whole every run (a feed only ever shows its latest entries); the store matches
each entry to an existing item by DOI, PMID, then normalised title, so nothing is stored twice.
A feed that fails (HTTP error, nothing feedparser can read, or any exception at all) is logged and counted
and the other feeds go on; the run is then *partial*, or failed if no feed could be read.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from tqdm import tqdm

from bot.fetch.results import SourceResult
from bot.sources import feeds as feed_source
from bot.sources.http import SourceError
from bot.store import now_iso, save_items, set_state
from bot.store.trials import link_papers_and_trials

log = logging.getLogger(__name__)

SOURCE = "feeds"


def run(db, config, *, full: bool = False, progress: bool = False, client=None, sleep=None,
        min_interval: float | None = None, backoff: float | None = None) -> SourceResult:
    """Read each feed in ``config.topic.feeds``; return counts (feeds, errors = failed feeds,
    fetched, new, updated, unchanged, links, and ``feed_errors``: one line per failed feed, also
    the result's ``problems``). Some feeds failing make the run partial; all of them, failed.

    ``client`` may be an HttpClient to use for every feed (tests), else one is made per host.
    """
    feeds = list(config.topic.feeds)
    counts = {"feeds": len(feeds), "errors": 0, "fetched": 0, "new": 0, "updated": 0,
              "unchanged": 0, "links": 0, "feed_errors": []}
    clients: dict[str, object] = {}
    stored_ids: list[str] = []
    for feed in tqdm(feeds, desc="feeds", unit="feed", disable=not progress):
        started = now_iso()
        host = urlsplit(feed.url).netloc
        feed_client = client or clients.setdefault(
            host, feed_source.make_client(feed.url, min_interval=min_interval, sleep=sleep, backoff=backoff))
        try:
            result = feed_source.read_feed(feed_client, feed.url, feed.name)
            saved = save_items(db, result.records, source=result.source)  # one transaction per feed
        except Exception as e:  # noqa: BLE001 - whatever breaks one feed is that feed's failure only
            line = _one_line(e, feed_source.source_name(feed.url, feed.name))
            counts["errors"] += 1
            counts["feed_errors"].append(line)
            log.error("feed %s failed: %s", feed.name or feed.url, line)
            continue
        if result.warning:   # feedparser read it all the same (an undefined entity, a wrong charset…)
            log.warning("%s: read despite a recoverable problem (%s): %d entries", result.source,
                        result.warning, len(result.records))
        for key in ("new", "updated", "unchanged"):
            counts[key] += saved[key]
        counts["fetched"] += len(result.records)
        stored_ids += saved["ids"]
        set_state(db, SOURCE, feed.url, last_success=started, extra={"entries": len(result.records)})
        log.info("%s: %d entries (%d new)%s", result.source, len(result.records), saved["new"],
                 f", {result.skipped} skipped (no title, no text, no link)" if result.skipped else "")
    if stored_ids:
        counts["links"] = link_papers_and_trials(db, item_ids=stored_ids)
    if feeds and counts["errors"] == len(feeds):
        raise SourceError(f"feeds: all {len(feeds)} feeds failed: {'; '.join(counts['feed_errors'])}"[:1000])
    return SourceResult(counts, problems=list(counts["feed_errors"]))


def _one_line(error: Exception, source: str) -> str:
    """A SourceError already names the feed; anything else gets the feed and the error's type."""
    text = str(error).splitlines()[0] if str(error) else ""
    if isinstance(error, SourceError):
        return text
    return f"{source}: {type(error).__name__}: {text}"[:500]
