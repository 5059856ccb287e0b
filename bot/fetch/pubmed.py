"""Fetch step for PubMed: pick the Entrez-date window, search, fetch in batches, store.

The window starts at ``backfill_from`` on the first run (or with ``full``), else at the end of
the last successful window minus ``overlap_days`` (records indexed late are caught next time).
Each batch is saved in its own transaction, so a crash keeps finished batches; the state only
advances when every batch was read, so a skipped batch is read again next run.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from tqdm import tqdm

from bot.faults import crash_point
from bot.sources import pubmed
from bot.store import get_state, now_iso, save_items, set_state

log = logging.getLogger(__name__)
SOURCE = "pubmed"


def window_for(db, config, *, full: bool = False, window_end: str | None = None) -> tuple[str, str]:
    """(mindate, maxdate) as YYYY/MM/DD for this run, from the stored state and the config."""
    settings = config.pubmed
    end = (window_end or now_iso()[:10]).replace("-", "/")
    state = None if full else get_state(db, SOURCE, config.topic.pubmed_query)
    if state and state.get("window_end"):
        previous_end = pubmed.parse_edate(state["window_end"])
        start = pubmed.format_edate(previous_end - timedelta(days=int(settings.get("overlap_days", 3))))
    else:
        start = settings.get("backfill_from", "1950/01/01").replace("-", "/")
    return start, end


def run(db, config, *, full: bool = False, progress: bool = False, client=None, sleep=None,
        window_end: str | None = None) -> dict:
    """Fetch PubMed records for ``config.topic.pubmed_query`` into ``db``; return counts
    {fetched, new, updated, unchanged, batches, errors, requests, window}."""
    started = now_iso()
    query = config.topic.pubmed_query
    client = client or pubmed.make_client(config, sleep=sleep)
    mindate, maxdate = window_for(db, config, full=full, window_end=window_end)
    log.info("pubmed: searching Entrez dates %s-%s", mindate, maxdate)
    windows = pubmed.plan_windows(client, query, mindate, maxdate, limit=pubmed.SEARCH_LIMIT)
    total = sum(w.count for w in windows)
    counts = {"fetched": 0, "new": 0, "updated": 0, "unchanged": 0, "batches": 0, "errors": 0,
              "requests": 0, "matched": total, "window": f"{mindate}-{maxdate}"}
    batch_size = int(config.pubmed.get("batch_size", pubmed.DEFAULT_BATCH_SIZE))
    first_error = None  # the first failed batch's reason: the one line the user sees
    with tqdm(total=total, disable=not progress, unit="rec", desc="PubMed") as bar:
        for batch in pubmed.fetch_batches(client, windows, batch_size):
            counts["batches"] += 1
            bar.update(batch.retmax)
            if batch.error:
                counts["errors"] += 1
                first_error = first_error or batch.error
                continue
            counts["errors"] += batch.record_errors
            saved = save_items(db, batch.records, source=SOURCE)
            crash_point("fetch:after_batch")  # the batch is committed; the state is not advanced yet
            counts["fetched"] += len(batch.records)
            for key in ("new", "updated", "unchanged"):
                counts[key] += saved[key]
            if not progress:
                log.info("pubmed: batch %d: %d records (%d new) — %d/%d", counts["batches"],
                         len(batch.records), saved["new"], min(batch.retstart + batch.retmax, total), total)
    counts["requests"] = client.requests_sent
    if counts["errors"]:
        counts["_status"] = "partial"
        counts["_error"] = (f"{counts['errors']} batch/record error(s)"
                            + (f" (first: {first_error[:200]})" if first_error else "")
                            + "; window kept for the next run")
        log.warning("pubmed: %s", counts["_error"])
    else:
        set_state(db, SOURCE, query, last_success=started, window_end=maxdate)
    return counts
