"""``spsbot search --live``: ask PubMed and ClinicalTrials.gov directly, merge with the store.

The requests go through the sources' own code (``bot.sources.pubmed`` / ``bot.sources.clinicaltrials``
and their ``HttpClient`` chokepoints), so the same rate limits, retries and ``tool``/``email``
parameters apply as in a fetch. By default the user's query is combined with the topic (the
configured PubMed query; the CT.gov condition): "rituximab" asks for rituximab *in SPS*, not the
100,000 rituximab papers. ``within_topic=False`` asks for the query alone.
"""

from __future__ import annotations

import dataclasses
import logging
import re

from bot.config import DEFAULT_CTGOV_URL
from bot.search.hybrid import Filters, ParsedQuery, SearchHits, Token, hit_from_item, item_url, parse_query, rrf_fuse
from bot.store import item_id_for, now_iso, save_items
from bot.store.search import normalise_status, scored_item
from bot.errors import one_line

log = logging.getLogger(__name__)

__all__ = ["LiveResult", "live_records", "merge_live", "save_live", "pubmed_term", "ctgov_term",
           "record_passes"]


@dataclasses.dataclass
class LiveResult:
    pubmed: list[dict] = dataclasses.field(default_factory=list)     # records, PubMed's order
    trials: list[dict] = dataclasses.field(default_factory=list)     # records, CT.gov's order
    errors: dict[str, str] = dataclasses.field(default_factory=dict)  # source -> one line
    counts: dict[str, int] = dataclasses.field(default_factory=dict)  # source -> total matches


_UNSAFE = re.compile(r"[^\w\s\-'./]")


def _pubmed_token(token: Token) -> str:
    text = " ".join(_UNSAFE.sub(" ", token.text).split())
    if token.phrase:
        return f'"{text}"'
    return text + ("*" if token.prefix else "")


def pubmed_term(parsed: ParsedQuery, topic_query: str = "") -> str:
    """The esearch term: groups ANDed inside, ORed together, exclusions as NOT, within the topic."""
    groups = [" AND ".join(_pubmed_token(t) for t in g if _UNSAFE.sub("", t.text).strip()) for g in parsed.groups]
    groups = [g for g in groups if g]
    if not groups:
        raise ValueError("the query has no words to search for")
    term = f"({groups[0]})" if len(groups) == 1 else "(" + " OR ".join(f"({g})" for g in groups) + ")"
    for token in parsed.excluded:
        term += f" NOT {_pubmed_token(token)}"
    return f"({topic_query}) AND {term}" if topic_query else term


def ctgov_term(parsed: ParsedQuery) -> str:
    """The ``query.term`` Essie expression (same shape: AND inside groups, OR between, NOT)."""
    return pubmed_term(parsed).replace("*", "")


def _pubmed_live(config, parsed, filters: Filters, limit: int, within_topic: bool, result: LiveResult,
                 client=None) -> None:
    from bot.sources import pubmed
    client = client or pubmed.configured_client(config)
    term = pubmed_term(parsed, config.topic.pubmed_query if within_topic else "")
    # An Entrez-date floor is safe for --since (a paper is indexed after it is published); the
    # upper bound stays open because old papers are still being indexed.
    mindate = (filters.since or "1800-01-01").replace("-", "/")
    found = pubmed.esearch(client, term, mindate, now_iso()[:10].replace("-", "/"), datetype="edat")
    result.counts["pubmed"] = found.count
    if not found.count:
        return
    window = dataclasses.replace(found, count=min(found.count, limit))
    for batch in pubmed.fetch_batches(client, [window], batch_size=limit):
        if batch.error:
            raise RuntimeError(batch.error)
        result.pubmed.extend(batch.records)


def _ctgov_live(config, parsed, limit: int, within_topic: bool, result: LiveResult, client=None) -> None:
    from bot.sources import clinicaltrials as ctgov
    settings = config.clinicaltrials
    client = client or ctgov.make_client(settings.get("base_url") or DEFAULT_CTGOV_URL,
                                         min_interval=float(settings.get("min_interval", 1.0)))
    params = ctgov.search_params(condition=config.topic.ctgov_condition if within_topic else "",
                                 term=ctgov_term(parsed), page_size=min(max(limit, 1), ctgov.MAX_PAGE_SIZE))
    page = next(iter(ctgov.iter_pages(client, params)), {})  # one page is enough for a look-up
    result.counts["clinicaltrials"] = int(page.get("totalCount") or len(page.get("studies") or []))
    for study in (page.get("studies") or [])[:limit]:
        try:
            result.trials.append(ctgov.parse_study(study))
        except ValueError as e:
            log.warning("live clinicaltrials: study skipped: %s", e)


def live_records(config, query: str, filters: Filters | None = None, *, limit: int = 20,
                 within_topic: bool = True, clients: dict | None = None) -> LiveResult:
    """Records from PubMed (unless ``--kind trial``) and CT.gov (unless ``--kind paper``).

    A failing source is reported in ``errors`` and the other still answers.
    """
    filters = filters or Filters()
    parsed = parse_query(query)
    clients = clients or {}
    result = LiveResult()
    if filters.kind != "trial":
        try:
            _pubmed_live(config, parsed, filters, limit, within_topic, result, clients.get("pubmed"))
        except Exception as e:  # noqa: BLE001 - reported to the user; the other source goes on
            result.errors["pubmed"] = one_line(e)
    if filters.kind != "paper":
        try:
            _ctgov_live(config, parsed, limit, within_topic, result, clients.get("clinicaltrials"))
        except Exception as e:  # noqa: BLE001
            result.errors["clinicaltrials"] = one_line(e)
    return result


def _record_date(record: dict) -> str:
    return str(record.get("pub_date") or record.get("pub_year") or (record.get("entrez_date") or "")[:10])


def record_passes(record: dict, filters: Filters, labels: list[str] | None = None) -> bool:
    """The search filters applied to a live record (the same rules as ``bot.store.search.filter_sql``)."""
    if filters.kind and record.get("kind") != filters.kind:
        return False
    day = _record_date(record)
    if filters.since and (not day or day < filters.since[:len(day)]):
        return False
    if filters.until and (not day or day > filters.until):
        return False
    if filters.pub_types:
        types = " | ".join(record.get("pub_types") or []).lower()
        if not any(p.lower() in types for p in filters.pub_types):
            return False
    if filters.statuses:
        status = normalise_status((record.get("extra") or {}).get("overall_status") or "")
        if status not in {normalise_status(s) for s in filters.statuses}:
            return False
    if filters.themes and not set(filters.themes) & set(labels or []):
        return False
    if filters.relevant_only:
        return False  # a live record has not been scored yet
    return True


def _live_hit(record: dict) -> dict:
    """A result row for a record the store does not have (not scored: no labels, no relevance)."""
    year = record.get("pub_year") or (int(_record_date(record)[:4]) if _record_date(record)[:4].isdigit() else None)
    return {
        "id": item_id_for(record), "kind": record.get("kind"), "title": record.get("title"), "year": year,
        "date": record.get("pub_date") or record.get("entrez_date"), "journal": record.get("journal"),
        "pub_types": record.get("pub_types") or [],
        "status": (record.get("extra") or {}).get("overall_status") if record.get("kind") == "trial" else None,
        "labels": [], "relevance": None, "score": None, "url": item_url(record),
        "fts_rank": None, "similarity": None, "origin": "live",
    }


def merge_live(db, store: SearchHits, live: LiveResult, filters: Filters | None = None,
               limit: int = 20) -> SearchHits:
    """One list: the store's ranking and each live source's ranking fused by RRF.

    A live record already in the store shows the stored item (scores, labels), marked
    ``store+live``; a new one shows what the source said, marked ``live``.
    """
    filters = filters or Filters()
    hits = {h["id"]: h for h in store.hits}
    rankings = [[h["id"] for h in store.hits]]
    for records in (live.pubmed, live.trials):
        ranking = []
        for record in records:
            item_id = item_id_for(record)
            if item_id in hits:
                hits[item_id]["origin"] = "store+live"
            else:
                stored = scored_item(db, item_id)
                if stored is not None:
                    hit = hit_from_item(stored, None, fts_rank=None, similarity=None, origin="store+live")
                    if not record_passes(record, filters, hit["labels"]):
                        continue
                    hits[item_id] = hit
                elif record_passes(record, filters):
                    hits[item_id] = _live_hit(record)
                else:
                    continue
            ranking.append(item_id)
        rankings.append(ranking)
    fused = rrf_fuse(rankings)[:limit]
    merged = [dict(hits[item_id], score=round(score, 6)) for item_id, score in fused]
    notes = list(store.notes) + [f"live {source} failed: {error}" for source, error in live.errors.items()]
    notes += [f"live {source}: {n} matches, {len(recs)} fetched" for source, n, recs in
              (("pubmed", live.counts.get("pubmed"), live.pubmed),
               ("clinicaltrials", live.counts.get("clinicaltrials"), live.trials)) if n is not None]
    return SearchHits(query=store.query, hits=merged, notes=notes, semantic=store.semantic)


def save_live(db, live: LiveResult) -> dict:
    """Store live records: papers with ``save_items``, trials with ``save_trials`` (versions, links)."""
    from bot.store.trials import save_trials
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    if live.pubmed:
        saved = save_items(db, live.pubmed, source="pubmed")
        for key in counts:
            counts[key] += saved[key]
    if live.trials:
        saved = save_trials(db, live.trials)
        for key in counts:
            counts[key] += saved[key]
    return counts
