"""ClinicalTrials.gov API v2: search studies page by page and parse them into plain records.

Pure HTTP + parsing, no database code. ``search_studies`` yields raw study dicts (following
``nextPageToken`` → ``pageToken`` until the server stops sending one), ``parse_study`` turns one
into a record for ``bot.store.save_items`` / ``bot.store.trials.save_trials`` (which detects
changes in the tracked fields of ``record["extra"]``). The API's ``markup`` fields (brief summary,
why stopped) are markdown: the record holds the plain text they say (``bot.sources.markdown``), and
the brief summary's markdown too (``extra["summary_markdown"]``) for pages that show it formatted.

What the server says is checked, because a wrong answer taken at its word loses studies or loops:

- a page is decoded strictly: duplicate JSON keys fail the page (which study did the registry
  mean?); ``NaN``/``Infinity`` and invalid UTF-8 are kept as markers so only the study holding
  them is refused (``parse_study`` raises ``ValueError``, the fetch quarantines it);
- an empty page that still carries a new ``nextPageToken`` is followed (the spec allows it); a
  repeated token, a page that adds no study not already served, more pages than ``totalCount``
  can fill (with a margin) or a run of empty pages stop with a ``SourceError``;
- a search that ends (no ``nextPageToken``) having served fewer studies than its ``totalCount``
  fails: the state is not advanced and the next run asks again.

API reference: https://clinicaltrials.gov/data-api/api (``GET /studies``; ``totalCount`` comes on
the first page only, and only with ``countTotal=true``; ``pageToken`` ← ``nextPageToken``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Callable, Iterable, Iterator

from bot.config import DEFAULT_CTGOV_URL
from bot.errors import one_line
from bot.links import trial_url
from bot.sources.http import HttpClient, SourceError, source_client
from bot.sources.markdown import to_text

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000  # the API refuses more
MAX_PAGES = 10_000    # a last-resort stop: 10 million studies is more than the registry holds
MAX_EMPTY_PAGES = 3   # empty pages in a row that may still promise more (the spec allows a few)

_NCT_RE = re.compile(r"^NCT\d{8}$")


def make_client(base_url: str = DEFAULT_CTGOV_URL, *, min_interval: float | None = None,
                **http_options) -> HttpClient:
    """The CT.gov chokepoint: polite spacing (``min_interval`` None: 1 s; the registry asks for
    ≤ 1 request/s). ``http_options`` (None values left out) go to ``HttpClient``."""
    return source_client(base_url, name="clinicaltrials", min_interval=1.0 if min_interval is None else min_interval,
                         **http_options)


def configured_client(config, *, min_interval: float | None = None, **http_options) -> HttpClient:
    """``make_client`` from ``config.clinicaltrials`` (base_url, min_interval)."""
    settings = config.clinicaltrials
    if min_interval is None:
        min_interval = float(settings.get("min_interval", 1.0))
    return make_client(settings.get("base_url") or DEFAULT_CTGOV_URL, min_interval=min_interval, **http_options)


def search_params(*, condition: str = "", term: str = "", page_size: int = MAX_PAGE_SIZE,
                  since: str | None = None) -> dict:
    """The query parameters of one search (without paging)."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    params = {"format": "json", "pageSize": page_size}
    if condition:
        params["query.cond"] = condition
    if term:
        params["query.term"] = term
    if since:
        # Essie expression syntax: studies whose last update was posted on/after `since`.
        params["filter.advanced"] = f"AREA[LastUpdatePostDate]RANGE[{since},MAX]"
    return params


class NonFinite(float):
    """A ``NaN``/``Infinity`` the server sent (not JSON, but Python's parser accepts it): kept as a
    marker so the study holding it is refused alone, never stored (SQLite's JSON functions, and
    every view reading ``items.extra``, fail on a NaN)."""

    def __new__(cls, text: str):
        value = super().__new__(cls, float(text.replace("Infinity", "inf")))
        value.text = text
        return value


def _refuse_duplicates(pairs: list[tuple]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate JSON key(s) {', '.join(map(repr, twice[:3]))}")
    return dict(pairs)


def decode_page(body: bytes) -> object:
    """A page's JSON. Duplicate keys raise ValueError; NaN/Infinity become ``NonFinite`` markers and
    invalid UTF-8 becomes lone surrogates, both refused later by ``parse_study`` for that study only."""
    text = body.decode("utf-8", errors="surrogateescape") if isinstance(body, bytes) else body
    return json.loads(text, object_pairs_hook=_refuse_duplicates, parse_constant=NonFinite)


def page_limit(total: int, page_size: int) -> int:
    """The most pages a search with ``total`` studies may take: what totalCount fills, plus a
    margin for studies added while paging and the empty pages the spec allows."""
    needed = max(1, math.ceil(total / max(1, page_size)))
    return needed + max(2, needed // 10)


def _raw_id(study) -> str | None:
    value = _get(study, "protocolSection", "identificationModule", "nctId") if isinstance(study, dict) else None
    return str(value) if value is not None else None


def iter_pages(client: HttpClient, params: dict) -> Iterator[dict]:
    """Yield each page (decoded JSON) of one search, following nextPageToken until it is absent.

    The first page asks for ``countTotal``; the pages are bounded by it (``page_limit``). A
    repeated token, a page adding no new study or too many empty pages in a row would page
    forever (CT.gov once answered the same studies with a fresh token, 1,355 requests a minute),
    so each stops with a SourceError.
    """
    seen_tokens: set[str] = set()
    seen_ids: set[str] = set()
    token = None
    limit, empty_run = MAX_PAGES, 0
    page_size = int(params.get("pageSize") or 10)
    page_number = 0
    while True:
        page_number += 1
        if page_number > limit:
            raise SourceError(f"clinicaltrials: more than {limit} pages for {_describe(params) or 'the search'} "
                              f"(more than its totalCount can fill); stopping rather than paging forever")
        page_params = dict(params)
        if token:
            page_params["pageToken"] = token
        else:
            page_params["countTotal"] = "true"
        response = client.request("studies", page_params)
        try:
            page = decode_page(response.content)
        except ValueError as e:
            raise SourceError(f"clinicaltrials: page {page_number} is not valid JSON "
                              f"({response.headers.get('Content-Type', '?')}; {str(e)[:120]})") from None
        # A page without a 'studies' list is the wrong shape (an error or maintenance answer), not
        # the last page: taking it for the end would drop the remaining studies silently. Only a
        # first page saying totalCount 0 may leave the list out.
        if not isinstance(page, dict) or not (isinstance(page.get("studies"), list)
                                              or (page_number == 1 and page.get("totalCount") == 0
                                                  and "studies" not in page)):
            raise SourceError(f"clinicaltrials: page {page_number} has no 'studies' list")
        if page_number == 1 and "totalCount" in page:
            total = page["totalCount"]
            if not isinstance(total, int) or isinstance(total, bool) or total < 0:
                raise SourceError(f"clinicaltrials: page 1 has a totalCount that is not a count: {total!r}")
            limit = page_limit(total, page_size)
            log.info("clinicaltrials: %s studies match %s", total, _describe(params))
        studies = page.get("studies") or []
        ids = [_raw_id(s) for s in studies]
        if studies and all(i is not None and i in seen_ids for i in ids):
            raise SourceError(f"clinicaltrials: page {page_number} serves only studies already served; "
                              f"stopping rather than paging forever")
        seen_ids.update(i for i in ids if i is not None)
        yield page
        token = page.get("nextPageToken")
        if not token:
            return
        if token in seen_tokens:
            raise SourceError(f"clinicaltrials: nextPageToken repeated on page {page_number}; "
                              f"stopping rather than paging forever")
        seen_tokens.add(token)
        empty_run = 0 if studies else empty_run + 1
        if empty_run > MAX_EMPTY_PAGES:
            raise SourceError(f"clinicaltrials: {empty_run} empty pages in a row that still promise more; "
                              f"stopping rather than paging forever")


def _describe(params: dict) -> str:
    return " ".join(f"{k}={v!r}" for k, v in params.items() if k.startswith(("query.", "filter.")))


def search_studies(client: HttpClient, *, condition: str = "", terms: Iterable[str] = (),
                   page_size: int = MAX_PAGE_SIZE, since: str | None = None,
                   stats: dict | None = None) -> Iterator[dict]:
    """Yield raw v2 study dicts for the condition and each extra term, each NCT id once.

    ``stats`` (optional) is filled with ``pages`` and ``total`` (sum of each search's totalCount).
    A search that ends having served fewer studies than its totalCount raises SourceError after
    yielding what it served (the caller keeps those but must not advance its state).
    """
    searches = ([{"condition": condition}] if condition else []) + [{"term": t} for t in terms if t]
    seen: set[str] = set()
    stats = stats if stats is not None else {}
    stats.setdefault("pages", 0)
    stats.setdefault("total", 0)
    for search in searches:
        params = search_params(page_size=page_size, since=since, **search)
        total, served = None, 0
        for page in iter_pages(client, params):
            stats["pages"] += 1
            if "totalCount" in page:
                total = int(page["totalCount"] or 0)
                stats["total"] += total
            served += len(page.get("studies") or [])
            for study in page.get("studies") or []:
                key = _raw_id(study)
                if key is not None and key in seen:
                    continue
                if key is not None:
                    seen.add(key)
                yield study
        if total is not None and served < total:
            # Never silently truncated: the registry said there were more than it served.
            raise SourceError(f"clinicaltrials: {_describe(params)}: served {served} of the {total} studies "
                              f"it counted, with no nextPageToken; state kept for the next run")


def study_nct_id(study: dict) -> str | None:
    """The study's NCT id, or None when it has none, or not as a string of the NCTnnnnnnnn form."""
    value = _get(study, "protocolSection", "identificationModule", "nctId") if isinstance(study, dict) else None
    if not isinstance(value, str):
        return None
    nct_id = value.strip().upper()
    return nct_id if _NCT_RE.match(nct_id) else None


def check_values(value, path: str = "study") -> None:
    """Raise ValueError naming the first value a store cannot hold faithfully: a NaN or infinite
    number, or text with a lone surrogate (an unpaired ``\\ud83d`` escape, or invalid UTF-8)."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_values(item, f"{path}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path} is {getattr(value, 'text', value)!s}, not a finite number")
    elif isinstance(value, str) and _SURROGATE_RE.search(value):
        raise ValueError(f"{path} has a lone surrogate or invalid UTF-8 ({value[:40]!a})")


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def study_label(study) -> str:
    """What names a study in the quarantine: its NCT id, else its raw id value, else its title."""
    nct_id = study_nct_id(study)
    if nct_id:
        return nct_id
    raw = _raw_id(study)
    if raw is not None:
        return ascii(raw)[:40] if _SURROGATE_RE.search(raw) else raw[:40]
    title = _get(study, "protocolSection", "identificationModule", "briefTitle") if isinstance(study, dict) else None
    return f"(no nctId) {ascii(str(title))[:60]}" if title else "(a study with no nctId or title)"


# --- parsing ----------------------------------------------------------------------------------

def _get(obj, *path, default=None):
    for key in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
    return default if obj is None else obj


def _text(value) -> str:
    """Whitespace-collapsed text: a reformatted but equal value compares equal."""
    return " ".join(str(value).split()) if value not in (None, "") else ""


def _markup(value) -> str:
    """A v2 ``markup`` field (markdown: ``glioma \\[rHGG\\]``, ``* item``) as the plain text it says,
    paragraphs and list items on their own lines."""
    return to_text(str(value)) if value not in (None, "") else ""


def _date(struct) -> dict | None:
    """{"date": "2024-05" or "2024-05-17", "type": "ACTUAL"|"ESTIMATED"|None}; month-only kept as is."""
    if not isinstance(struct, dict) or not struct.get("date"):
        return None
    return {"date": _text(struct["date"]), "type": (_text(struct.get("type")) or None)}


PHASE_NAMES = {"EARLY_PHASE1": "Early Phase 1", "PHASE1": "Phase 1", "PHASE2": "Phase 2",
               "PHASE3": "Phase 3", "PHASE4": "Phase 4"}


def _pub_types(study_type: str, phases: list[str]) -> list[str]:
    """PubMed-like publication types, so the ranker treats trials and papers alike."""
    if study_type == "OBSERVATIONAL":
        return ["Observational Study"]
    if study_type == "EXPANDED_ACCESS":
        return ["Expanded Access"]
    named = [f"Clinical Trial, {PHASE_NAMES[p]}" for p in phases if p in PHASE_NAMES]
    return named or ["Clinical Trial"]


def parse_study(study: dict) -> dict:
    """One v2 study → a record for save_items/save_trials (``kind="trial"``, ``source="ctgov"``).

    ``extra`` holds every parsed trial field (``bot.store.trials.tracked_snapshot`` reads it).
    Raises ValueError if the study has no valid NCT id (a missing one, or not a string), or holds
    a value the store cannot keep (``check_values``).
    """
    if not isinstance(study, dict):
        raise ValueError(f"a study must be a JSON object, got {type(study).__name__}")
    nct_id = study_nct_id(study)
    if not nct_id:
        raw = _get(study, "protocolSection", "identificationModule", "nctId")
        raise ValueError("study without a valid protocolSection.identificationModule.nctId"
                         + (f" (got {type(raw).__name__} {raw!r})" if raw is not None else ""))
    check_values(study)
    proto = study.get("protocolSection") or {}
    ident, status = proto.get("identificationModule") or {}, proto.get("statusModule") or {}
    design, arms_mod = proto.get("designModule") or {}, proto.get("armsInterventionsModule") or {}
    locations = _get(proto, "contactsLocationsModule", "locations", default=[])
    sponsor = _text(_get(proto, "sponsorCollaboratorsModule", "leadSponsor", "name"))
    phases = [_text(p) for p in design.get("phases") or [] if p]
    study_type = _text(design.get("studyType"))
    first_posted = _date(status.get("studyFirstPostDateStruct"))
    results_posted = _date(status.get("resultsFirstPostDateStruct"))
    last_update = _date(status.get("lastUpdatePostDateStruct"))
    interventions = [{"type": _text(i.get("type")), "name": _text(i.get("name"))}
                     for i in arms_mod.get("interventions") or [] if isinstance(i, dict) and i.get("name")]
    arms = [{"type": _text(a.get("type")), "label": _text(a.get("label"))}
            for a in arms_mod.get("armGroups") or [] if isinstance(a, dict) and a.get("label")]
    references = [{"pmid": _text(r.get("pmid")), "type": _text(r.get("type")) or None}
                  for r in _get(proto, "referencesModule", "references", default=[])
                  if isinstance(r, dict) and _text(r.get("pmid")).isdigit()]
    enrollment = design.get("enrollmentInfo") or {}
    summary = str(_get(proto, "descriptionModule", "briefSummary", default="")).strip()
    why_stopped, why_stopped_written = _text(_markup(status.get("whyStopped"))), _text(status.get("whyStopped"))
    extra = {
        "brief_title": _text(ident.get("briefTitle")), "official_title": _text(ident.get("officialTitle")),
        "acronym": _text(ident.get("acronym")) or None,
        "overall_status": _text(status.get("overallStatus")) or None,
        "last_known_status": _text(status.get("lastKnownStatus")) or None,
        "why_stopped": why_stopped or None,
        # as written (markdown, whitespace collapsed) when that differs from its text: what versions
        # stored before markdown was read hold, so the store sees the same value, not a change
        "why_stopped_markdown": why_stopped_written if why_stopped_written != why_stopped else None,
        "phases": phases, "study_type": study_type or None,
        "conditions": [_text(c) for c in _get(proto, "conditionsModule", "conditions", default=[]) if c],
        "interventions": interventions, "arms": arms,
        "enrollment": enrollment.get("count"), "enrollment_type": _text(enrollment.get("type")) or None,
        "sponsor": sponsor or None,
        "start_date": _date(status.get("startDateStruct")),
        "primary_completion_date": _date(status.get("primaryCompletionDateStruct")),
        "completion_date": _date(status.get("completionDateStruct")),
        "first_posted": first_posted, "last_update_posted": last_update, "results_first_posted": results_posted,
        "has_results": bool(study.get("hasResults") or study.get("resultsSection") or results_posted),
        "locations_count": len(locations) if isinstance(locations, list) else 0,
        "countries": sorted({_text(loc.get("country")) for loc in locations or []
                             if isinstance(loc, dict) and loc.get("country")}),
        "references": references,
        # the brief summary as the registry wrote it (markdown), for pages that show it formatted
        "summary_markdown": summary or None,
    }
    first_date = first_posted["date"] if first_posted else None
    return {
        "kind": "trial", "source": "ctgov", "nct_id": nct_id,
        "title": extra["brief_title"] or extra["official_title"] or nct_id,
        "abstract": _markup(summary) or None,
        "pub_date": first_date, "create_date": first_date,
        "pub_year": int(first_date[:4]) if first_date and first_date[:4].isdigit() else None,
        "url": trial_url(nct_id),
        "authors": [sponsor] if sponsor else [],
        "pub_types": _pub_types(study_type, phases),
        "keywords": [_text(k) for k in _get(proto, "conditionsModule", "keywords", default=[]) if k],
        "nct_ids": [nct_id],
        "extra": extra,
        "version_date": last_update["date"] if last_update else None,
    }


def parse_studies(studies: Iterable[dict],
                  refuse: Callable[[str, str], None] | None = None) -> Iterator[dict]:
    """Parse many studies one by one: a study that fails is handed to ``refuse(label, error)``
    (the fetch quarantines it) or logged, and the others go on."""
    for study in studies:
        try:
            yield parse_study(study)
        except Exception as e:  # noqa: BLE001 - one odd study must never cost its page
            error = one_line(e)[:300]
            label = study_label(study)
            log.warning("clinicaltrials: study %s refused: %s", label, error)
            if refuse is not None:
                refuse(label, error)
