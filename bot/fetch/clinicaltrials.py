"""Fetch ClinicalTrials.gov: search, store trials, record field-level changes, link papers.

The first run (or ``full=True``) asks for every study matching the topic; later runs ask only
for studies whose last update was posted since the previous successful run, minus
``overlap_days`` (the registry posts updates a day or more after they are made). The state only
advances when the whole fetch succeeded, so a failed run is retried from the same point.

Studies are parsed one by one: a study that cannot be parsed or stored faithfully (no NCT id, an
integer one, a NaN count, a lone surrogate) goes to the ``quarantine`` table and the others are
stored; the state still advances. A later fetch that parses it releases it.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from tqdm import tqdm

from bot.dates import parse_day
from bot.fetch.results import SourceResult
from bot.sources import clinicaltrials as ctgov
from bot.store import get_state, now_iso, set_state
from bot.store.quarantine import quarantine_record, release_records
from bot.store.trials import save_trials

log = logging.getLogger(__name__)

SOURCE = "clinicaltrials"
SAVE_BATCH = 500  # studies stored per transaction


def state_query(config) -> str:
    """What identifies the search in source_state: a new condition or term list starts afresh."""
    topic = config.topic
    return f"cond={topic.ctgov_condition}|terms={'|'.join(topic.ctgov_terms)}"


def since_date(state: dict | None, overlap_days: int) -> str | None:
    """The LastUpdatePostDate lower bound for an incremental run (None = everything)."""
    if not state or not state.get("last_success"):
        return None
    last = parse_day(state["last_success"])
    return (last - timedelta(days=max(0, overlap_days))).isoformat()


def run(db, config, *, full: bool = False, progress: bool = False, client=None, sleep=None,
        min_interval: float | None = None, backoff: float | None = None) -> SourceResult:
    """Fetch and store the topic's trials; return the counts (fetched/new/updated/unchanged/
    versions/changes/links/quarantined/released/requests/pages). A failed search raises."""
    settings = config.clinicaltrials
    client = client or ctgov.configured_client(config, min_interval=min_interval, sleep=sleep, backoff=backoff)
    query = state_query(config)
    started = now_iso()
    since = None if full else since_date(get_state(db, SOURCE, query), settings.get("overlap_days", 3))
    log.info("clinicaltrials: %s", f"studies updated since {since}" if since else "all matching studies")
    requests_before = client.requests_sent
    stats: dict = {}
    counts = {"fetched": 0, "new": 0, "updated": 0, "unchanged": 0, "versions": 0, "changes": 0, "links": 0,
              "quarantined": 0, "released": 0}

    def refuse(label: str, error: str) -> None:
        quarantine_record(db, SOURCE, label, error)
        counts["quarantined"] += 1

    studies = ctgov.search_studies(client, condition=config.topic.ctgov_condition,
                                   terms=config.topic.ctgov_terms,
                                   page_size=int(settings.get("page_size", ctgov.MAX_PAGE_SIZE)),
                                   since=since, stats=stats)
    batch: list[dict] = []
    with tqdm(desc="clinicaltrials", unit="study", disable=not progress) as bar:
        try:
            for record in ctgov.parse_studies(studies, refuse=refuse):
                batch.append(record)
                bar.update(1)
                if len(batch) >= SAVE_BATCH:
                    _save(db, batch, counts, refuse)
                    batch = []
        finally:
            # what was served is stored even when the search then fails (its state is kept)
            if batch:
                _save(db, batch, counts, refuse)
    counts["requests"] = client.requests_sent - requests_before
    counts["pages"] = stats.get("pages", 0)
    set_state(db, SOURCE, query, last_success=started, window_end=started,
              extra={"since": since, "total": stats.get("total", 0)})
    if counts["quarantined"]:
        log.warning("clinicaltrials: %d stud(ies) quarantined (see `spsbot status`); the rest is stored",
                    counts["quarantined"])
    return SourceResult(counts)


def _save(db, batch: list[dict], counts: dict, refuse) -> None:
    """Store a batch in one transaction; if the store refuses it, store its studies one by one
    and quarantine the one(s) it refuses (each save is its own transaction: nothing half-stored)."""
    t0 = time.monotonic()
    try:
        results = [(batch, save_trials(db, batch))]
    except Exception as e:  # noqa: BLE001 - find the record the store refused, keep the others
        log.warning("clinicaltrials: storing %d studies failed (%s); storing them one by one", len(batch), e)
        results = []
        for record in batch:
            try:
                results.append(([record], save_trials(db, [record])))
            except Exception as one:  # noqa: BLE001 - quarantined with the store's reason
                refuse(record["nct_id"], f"not storable: {type(one).__name__}: {one}")
    for stored, result in results:
        for key in ("new", "updated", "unchanged", "versions", "changes", "links"):
            counts[key] += result[key]
        counts["fetched"] += len(stored)
        counts["released"] += release_records(db, SOURCE, [r["nct_id"] for r in stored])
    log.debug("clinicaltrials: stored %d studies in %.2fs", len(batch), time.monotonic() - t0)

