"""Fetch step for PubMed: search by create date, sweep modified records, store, quarantine.

Three searches a run, each stored batch by batch (a crash keeps finished batches):

1. **New records**: the topic's query over a *create-date* window (``[crdt]``, the day a record
   entered PubMed). The window starts at ``backfill_from`` on the first run (or with ``full``),
   else at the end of the last successful window minus ``overlap_days``. The Entrez date would
   miss old citations indexed late: NCBI back-dates their EDAT to the publication date.
2. **Modified records** (``modified_days``, 0 = off): the query over records *modified*
   (``datetype=mdat``) since the previous sweep (at least the last ``modified_days`` days), so a
   paper that only matches once its MeSH headings are added, an abstract added later or an
   erratum link is stored; and every *stored* paper marked "Retracted Publication" in that time
   is re-read, whatever the query, so its retraction is noticed.
3. **Quarantined records** are asked for again by PMID; one that parses now is stored and released.

A record is repaired before it is ever held: one whose only fault is a character XML forbids
(``&#x1;``, a raw control character) or bytes that are not UTF-8 is stored without them, with a
note in its row (``extra.repaired``: what was removed from which field; counted in
``repaired``). A record that still cannot be parsed (alone: its batch is fetched again in halves
down to it) goes to the ``quarantine`` table and the rest of the batch is stored; the window
still advances. A batch the server answered wrongly keeps the window, so it is read again next run.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from tqdm import tqdm

from bot.faults import crash_point
from bot.fetch.results import SourceResult
from bot.sources import pubmed
from bot.store import get_state, now_iso, save_items, set_state, stored_pmids
from bot.store.quarantine import open_quarantine, quarantine_record, release_records

log = logging.getLogger(__name__)
SOURCE = "pubmed"
# source_state key prefix of the modified-records sweep (its own window, so an outage is caught up)
MODIFIED_STATE = "mdat|"
RETRACTED_TERM = '"retracted publication"[pt]'
DEFAULT_MODIFIED_DAYS = 14


def create_date_window(db, config, *, full: bool = False, window_end: str | None = None) -> tuple[str, str]:
    """(mindate, maxdate) of the create-date window as YYYY/MM/DD, from the stored state and the config."""
    settings = config.pubmed
    end = (window_end or now_iso()[:10]).replace("-", "/")
    state = None if full else get_state(db, SOURCE, config.topic.pubmed_query)
    if state and state.get("window_end"):
        previous_end = pubmed.parse_edate(state["window_end"])
        start = pubmed.format_edate(previous_end - timedelta(days=int(settings.get("overlap_days", 3))))
    else:
        start = settings.get("backfill_from", "1950/01/01").replace("-", "/")
    return start, end


def modified_window(db, config, maxdate: str) -> tuple[str, str] | None:
    """(mindate, maxdate) of the modified-records sweep, or None when it is switched off.

    At least the last ``modified_days`` days; after an outage, from the previous sweep's end minus
    ``overlap_days`` (modifications made while PubMed could not be reached are not skipped).
    """
    days = int(config.pubmed.get("modified_days", DEFAULT_MODIFIED_DAYS))
    if days <= 0:
        return None
    end = pubmed.parse_edate(maxdate)
    start = end - timedelta(days=days)
    state = get_state(db, SOURCE, MODIFIED_STATE + config.topic.pubmed_query)
    if state and state.get("window_end"):
        previous = pubmed.parse_edate(state["window_end"]) - timedelta(days=int(config.pubmed.get("overlap_days", 3)))
        start = min(start, previous)
    return pubmed.format_edate(start), maxdate


def run(db, config, *, full: bool = False, progress: bool = False, client=None, sleep=None,
        window_end: str | None = None) -> SourceResult:
    """Fetch PubMed records for ``config.topic.pubmed_query`` into ``db``; return the counts
    {fetched, new, updated, unchanged, batches, errors, repaired (records stored without a
    character XML forbids, noted), quarantined (records refused this run), released (held records
    stored now), modified, retracted, requests, matched, window} and, when
    a batch or search failed, its problems and a one-line error (the run is then partial)."""
    started = now_iso()
    query = config.topic.pubmed_query
    client = client or pubmed.configured_client(config, sleep=sleep)
    backfill = full or not (get_state(db, SOURCE, query) or {}).get("window_end")
    mindate, maxdate = create_date_window(db, config, full=full, window_end=window_end)
    log.info("pubmed: searching create dates %s-%s", mindate, maxdate)
    windows = pubmed.plan_windows(client, query, mindate, maxdate, limit=pubmed.SEARCH_LIMIT, datetype="crdt")
    total = sum(w.count for w in windows)
    counts = {"fetched": 0, "new": 0, "updated": 0, "unchanged": 0, "batches": 0, "errors": 0,
              "repaired": 0, "quarantined": 0, "released": 0, "modified": 0, "retracted": 0,
              "requests": 0, "matched": total, "window": f"{mindate}-{maxdate}"}
    batch_size = int(config.pubmed.get("batch_size", pubmed.DEFAULT_BATCH_SIZE))
    problems: list[str] = []  # the first failure of each step: the line the user sees
    with tqdm(total=total, disable=not progress, unit="rec", desc="PubMed") as bar:
        for batch in pubmed.fetch_batches(client, windows, batch_size):
            bar.update(batch.retmax)
            _store(db, batch, counts, problems, progress, total)
    window_ok = not counts["errors"]
    if window_ok:
        set_state(db, SOURCE, query, last_success=started, window_end=maxdate)
    if backfill:
        # A backfill read every record as it is now: the sweep starts from here next time.
        if window_ok and int(config.pubmed.get("modified_days", DEFAULT_MODIFIED_DAYS)) > 0:
            set_state(db, SOURCE, MODIFIED_STATE + query, last_success=started, window_end=maxdate)
    else:
        _sweep_modified(db, config, client, maxdate, batch_size, counts, problems, started)
    _retry_quarantined(db, client, batch_size, counts)
    counts["requests"] = client.requests_sent
    result = SourceResult(counts, problems=problems)
    if problems:
        result.error = (f"{counts['errors']} batch/search error(s) (first: {problems[0][:200]})"
                        + ("; window kept for the next run" if not window_ok else ""))
        log.warning("pubmed: %s", result.error)
    if counts["quarantined"]:
        log.warning("pubmed: %d record(s) quarantined (see `spsbot status`); the rest is stored",
                    counts["quarantined"])
    return result


def _store(db, batch: pubmed.Batch, counts: dict, problems: list[str], progress: bool = False,
           total: int = 0, only_stored: bool = False) -> list[str]:
    """Save a batch's records, quarantine its refused ones; return the PMIDs stored."""
    counts["batches"] += 1
    if batch.error:
        counts["errors"] += 1
        problems.append(batch.error)
    records = batch.records
    if only_stored:
        known = stored_pmids(db, [r["pmid"] for r in records])
        records = [r for r in records if r["pmid"] in known]
    saved = save_items(db, records, source=SOURCE) if records else {"new": 0, "updated": 0, "unchanged": 0}
    crash_point("fetch:after_batch")  # the batch is committed; the state is not advanced yet
    for record_id, error in batch.quarantined:
        quarantine_record(db, SOURCE, record_id, error)
    pmids = [r["pmid"] for r in records]
    counts["released"] += release_records(db, SOURCE, pmids)
    counts["quarantined"] += len(batch.quarantined)
    counts["repaired"] += sum(1 for r in records if r["extra"].get("repaired"))
    counts["fetched"] += len(records)
    for key in ("new", "updated", "unchanged"):
        counts[key] += saved[key]
    if not progress and records:
        log.info("pubmed: batch %d: %d records (%d new, %d quarantined) — %d/%d", counts["batches"],
                 len(records), saved["new"], len(batch.quarantined),
                 min(batch.retstart + batch.retmax, total), total)
    return pmids


def _sweep_modified(db, config, client, maxdate: str, batch_size: int, counts: dict, problems: list[str],
                    started: str) -> None:
    """Re-read records modified since the last sweep: the query's, and stored papers retracted."""
    window = modified_window(db, config, maxdate)
    if window is None:
        return
    query = config.topic.pubmed_query
    low, high = window
    errors_before = counts["errors"]
    try:
        windows = pubmed.plan_windows(client, query, low, high, limit=pubmed.SEARCH_LIMIT, datetype="mdat")
        counts["modified"] = sum(w.count for w in windows)
        log.info("pubmed: %d record(s) of the query modified %s-%s", counts["modified"], low, high)
        for batch in pubmed.fetch_batches(client, windows, batch_size):
            _store(db, batch, counts, problems)
        retracted = pubmed.search_ids(client, RETRACTED_TERM, low, high, datetype="mdat")
        mine = sorted(stored_pmids(db, retracted))
        log.info("pubmed: %d retracted publication(s) modified %s-%s, %d of them stored here",
                 len(retracted), low, high, len(mine))
        for batch in pubmed.fetch_by_ids(client, mine, batch_size):
            counts["retracted"] += len(_store(db, batch, counts, problems, only_stored=True))
    except pubmed.SourceError as e:
        counts["errors"] += 1
        problems.append(f"modified-records sweep: {e}")
        log.error("pubmed: modified-records sweep %s-%s failed: %s", low, high, e)
    if counts["errors"] == errors_before:
        set_state(db, SOURCE, MODIFIED_STATE + query, last_success=started, window_end=high)


def _retry_quarantined(db, client, batch_size: int, counts: dict) -> None:
    """Ask again, by PMID, for the records still quarantined; store those that parse now.

    A failure here never fails the run: the records stay held and are asked for next time.
    """
    held = [row["record_id"] for row in open_quarantine(db, SOURCE) if row["record_id"].isdigit()]
    if not held:
        return
    log.info("pubmed: asking again for %d quarantined record(s)", len(held))
    retry = {key: 0 for key in counts if isinstance(counts[key], int)}
    try:
        for batch in pubmed.fetch_by_ids(client, held, batch_size):
            _store(db, batch, retry, [])
    except pubmed.SourceError as e:
        log.warning("pubmed: quarantined records could not be fetched again: %s", e)
    for key in ("fetched", "new", "updated", "unchanged", "released", "repaired"):
        counts[key] += retry[key]
    log.info("pubmed: %d quarantined record(s) stored now, %d still held", retry["released"],
             len(held) - retry["released"])
