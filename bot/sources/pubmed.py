"""PubMed through the NCBI E-utilities: search, fetch in batches, parse into item records.

Pure HTTP + parsing, no database code (``bot.fetch.pubmed`` stores what this yields).

- ``make_client(base_url, *, min_interval=None, **http_options)``: the request chokepoint
  (``tool``/``email`` on every request, an API key as a secret parameter, 3 requests/s, 10 with
  a key); ``configured_client(config)`` makes one from ``[sources.pubmed]`` and ``NCBI_API_KEY``.
- ``plan_windows(client, query, mindate, maxdate, datetype=…)``: one ``esearch`` (usehistory=y)
  per window, by **create date** (``[crdt]`` in the term: the day a record entered PubMed; its
  Entrez date is back-dated to the publication date when it was added more than 12 months
  late) or by modification date (``datetype=mdat``); a window matching more than one history
  query can page (9,999) is split in halves.
- ``fetch_batches(client, windows, batch_size)``: ``efetch`` (retmode=xml) through WebEnv/query_key
  + retstart/retmax, one ``Batch`` of parsed records per request. An answer whose only faults
  are characters XML forbids or bytes that are not UTF-8 is read without them, each record
  concerned noting what was removed where (``extra["repaired"]``, ``bot.sources.xml_repair``).
  A batch whose XML still cannot be parsed is fetched again in halves down to the single bad
  record, which is reported in
  ``Batch.quarantined`` while the others are kept; a batch the server answered wrongly (an
  error, no records) is reported in ``Batch.error``.
- ``search_ids`` / ``fetch_by_ids``: the PMIDs of a search, and efetch by PMID list (same
  isolation), for the retraction sweep and for re-trying quarantined records.
- ``parse_efetch(xml_bytes)``: PubmedArticleSet → record dicts (the ``items`` columns), from
  every DTD generation NLM has served (pubmed_080101 … pubmed_250101; ``offline_xml``,
  ``read_article_set``).

API docs: https://www.ncbi.nlm.nih.gov/books/NBK25499/ (ESearch, EFetch, usage guidelines).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, timedelta
from urllib.parse import urlsplit

from Bio import Entrez
from Bio.Entrez import Parser as EntrezParser

from bot.config import DEFAULT_EUTILS_URL
from bot.errors import one_line
from bot.links import pubmed_url
from bot.sources.html_text import html_to_text
from bot.sources.http import HttpClient, SourceError, source_client
from bot.sources.xml_repair import notes, salvage

log = logging.getLogger(__name__)

# One history query pages at most this many records (esearch/efetch retstart cap in PubMed).
SEARCH_LIMIT = 9999
DEFAULT_BATCH_SIZE = 500
# NCBI allows 3 requests/s without an API key and 10 with one.
INTERVAL_NO_KEY = 0.34
INTERVAL_WITH_KEY = 0.1
NCT_RE = re.compile(r"\bNCT\s?(\d{8})\b", re.IGNORECASE)

# --- the request chokepoint --------------------------------------------------------------------


def make_client(base_url: str = DEFAULT_EUTILS_URL, *, min_interval: float | None = None, tool: str = "spsbot",
                email: str = "", api_key: str = "", **http_options) -> HttpClient:
    """The E-utilities chokepoint (the shape every ``bot.sources`` client factory has).

    ``min_interval`` None: NCBI's limit (3 requests/s, 10/s with ``api_key``). The API key is a
    secret parameter: sent (by POST, so never in a URL), never logged or stored.
    ``http_options`` (``sleep``, ``clock``, ``backoff``, ``max_retries``, ``session``…; None
    values are left out) go to ``HttpClient``; tests pass ``sleep`` and ``backoff=0``.
    """
    params = {"tool": tool or "spsbot", **({"email": email} if email else {}),
              **({"api_key": api_key} if api_key else {})}
    if min_interval is None:
        min_interval = _request_spacing(None, base_url, bool(api_key))
    return source_client(base_url, name="pubmed", min_interval=min_interval, default_params=params,
                         secret_params=("api_key",), **http_options)


def configured_client(config, *, env=None, min_interval: float | None = None, **http_options) -> HttpClient:
    """``make_client`` from ``config.pubmed`` (base_url, tool, email, min_interval) and the
    environment's ``NCBI_API_KEY`` (``env``: another mapping than ``os.environ``)."""
    env = os.environ if env is None else env
    settings = config.pubmed
    api_key = env.get("NCBI_API_KEY") or ""
    base_url = settings.get("base_url") or DEFAULT_EUTILS_URL
    if min_interval is None:
        min_interval = _request_spacing(settings.get("min_interval"), base_url, bool(api_key))
    return make_client(base_url, min_interval=min_interval, tool=settings.get("tool") or "spsbot",
                       email=settings.get("email") or "", api_key=api_key, **http_options)


def _request_spacing(configured: float | None, base_url: str, with_key: bool) -> float:
    """Seconds between requests: NCBI's limit (3/s, 10/s with a key), or the configured
    ``min_interval`` when it is longer — or shorter against a local replay server only."""
    floor = INTERVAL_WITH_KEY if with_key else INTERVAL_NO_KEY
    if configured is None:
        return floor
    host = (urlsplit(base_url).hostname or "").lower()
    return float(configured) if configured >= floor or host in ("127.0.0.1", "localhost", "::1") else floor


# --- esearch ----------------------------------------------------------------------------------


@dataclass
class SearchResult:
    """One esearch answer: how many records match, and where the history server keeps them."""

    count: int
    webenv: str | None = None
    query_key: str | None = None
    ids: list[str] = field(default_factory=list)
    mindate: str | None = None
    maxdate: str | None = None
    warnings: list[str] = field(default_factory=list)
    datetype: str = "crdt"

    @property
    def label(self) -> str:
        return f"{self.mindate}-{self.maxdate}[{self.datetype}]"


def parse_esearch(body: bytes | str) -> SearchResult:
    """Parse an esearch answer (XML, or JSON for retmode=json).

    A non-empty ``<ERROR>`` or an ``ErrorList`` other than phrases-not-found raises SourceError;
    phrases not found (PubMed ignores them) and ``WarningList`` messages become warnings.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    if body.lstrip()[:1] == b"{":
        return _parse_esearch_json(body)
    try:
        root = ET.fromstring(body)  # ElementTree never resolves the external DTD
    except ET.ParseError as e:
        raise SourceError(f"pubmed esearch: unreadable answer ({e})") from None
    error = eutils_error(root)
    if error:
        raise SourceError(f"pubmed esearch: NCBI error: {error}")
    warnings, problems = [], []
    for entry in root.find("ErrorList") if root.find("ErrorList") is not None else []:
        text = f"{entry.tag}: {(entry.text or '').strip()}"
        (warnings if entry.tag in ("PhraseNotFound", "PhrasesNotFound") else problems).append(text)
    if problems:
        raise SourceError(f"pubmed esearch: NCBI error list: {'; '.join(problems)}")
    for entry in root.find("WarningList") if root.find("WarningList") is not None else []:
        if (entry.text or "").strip():
            warnings.append(f"{entry.tag}: {entry.text.strip()}")
    count_text = root.findtext("Count")
    if count_text is None:
        raise SourceError("pubmed esearch: answer has no <Count>")
    return SearchResult(count=int(count_text), webenv=root.findtext("WebEnv"),
                        query_key=root.findtext("QueryKey"),
                        ids=[e.text.strip() for e in root.iterfind("IdList/Id") if e.text], warnings=warnings)


def eutils_error(answer: bytes | ET.Element) -> str | None:
    """The text of an E-utilities ``<ERROR>`` element, or None. NCBI answers errors with HTTP 200
    and an ``<ERROR>``; an empty ``<ERROR/>`` also appears on successful answers and is no error."""
    root = answer if isinstance(answer, ET.Element) else ET.fromstring(answer)
    if root.tag == "ERROR":
        return (root.text or "").strip() or None
    texts = [(e.text or "").strip() for e in root.iter("ERROR")]
    return "; ".join(t for t in texts if t) or None


def _parse_esearch_json(body: bytes) -> SearchResult:
    data = json.loads(body)
    if "error" in data and "esearchresult" not in data:
        raise SourceError(f"pubmed esearch: NCBI error: {data['error']}")
    result = data.get("esearchresult") or {}
    if result.get("ERROR"):
        raise SourceError(f"pubmed esearch: NCBI error: {result['ERROR']}")
    errors = result.get("errorlist") or {}
    warnings = [f"PhraseNotFound: {p}" for p in errors.get("phrasesnotfound") or []]
    problems = [f"FieldNotFound: {f}" for f in errors.get("fieldsnotfound") or []]
    if problems:
        raise SourceError(f"pubmed esearch: NCBI error list: {'; '.join(problems)}")
    warnings += [f"{k}: {v}" for k, vs in (result.get("warninglist") or {}).items() for v in (vs or [])]
    return SearchResult(count=int(result.get("count", 0)), webenv=result.get("webenv"),
                        query_key=result.get("querykey"), ids=list(result.get("idlist") or []),
                        warnings=warnings)


# Date fields ESearch can limit by. "crdt" goes into the term as a range (``… AND
# 2026/11/14:2026/11/21[crdt]``, the documented search field tag); the others use the ``datetype``
# parameter with mindate/maxdate (ESearch: "mdat" modification, "pdat" publication, "edat" Entrez).
DATE_TYPES = ("crdt", "edat", "mdat", "pdat")


def dated_search(query: str, mindate: str, maxdate: str, datetype: str = "crdt") -> dict:
    """The esearch parameters restricting ``query`` to [mindate, maxdate] of ``datetype``."""
    if datetype not in DATE_TYPES:
        raise ValueError(f"datetype must be one of {', '.join(DATE_TYPES)}, got {datetype!r}")
    if datetype == "crdt":
        return {"term": f"({query}) AND {mindate}:{maxdate}[crdt]"}
    return {"term": query, "datetype": datetype, "mindate": mindate, "maxdate": maxdate}


def esearch(client: HttpClient, query: str, mindate: str, maxdate: str, datetype: str = "crdt") -> SearchResult:
    """Search PubMed over a date range (inclusive ``YYYY/MM/DD`` bounds) of ``datetype``, keeping
    the result on the history server (usehistory=y) so efetch can page it."""
    response = client.request("esearch.fcgi", method="POST", data={
        "db": "pubmed", "usehistory": "y", "retmax": "0", **dated_search(query, mindate, maxdate, datetype)})
    result = parse_esearch(response.content)
    result.mindate, result.maxdate, result.datetype = mindate, maxdate, datetype
    for warning in result.warnings:
        log.warning("pubmed esearch %s-%s[%s]: %s", mindate, maxdate, datetype, warning)
    if result.count and not (result.webenv and result.query_key):
        raise SourceError("pubmed esearch: answer has no WebEnv/QueryKey although usehistory=y")
    return result


def search_ids(client: HttpClient, query: str, mindate: str, maxdate: str, datetype: str = "mdat",
               limit: int = SEARCH_LIMIT) -> list[str]:
    """The PMIDs matching ``query`` in the date range; a range with more than one answer can
    list (``limit``) is split in halves, never truncated (a single day above it raises)."""
    response = client.request("esearch.fcgi", method="POST", data={
        "db": "pubmed", "retmax": str(limit), **dated_search(query, mindate, maxdate, datetype)})
    result = parse_esearch(response.content)
    if result.count > limit:
        start, end = parse_edate(mindate), parse_edate(maxdate)
        if start >= end:
            raise SourceError(f"pubmed esearch: {result.count} records for {query!r} on {mindate}[{datetype}] "
                              f"alone, more than one answer lists ({limit})")
        middle = start + (end - start) // 2
        return (search_ids(client, query, format_edate(start), format_edate(middle), datetype, limit)
                + search_ids(client, query, format_edate(middle + timedelta(days=1)), format_edate(end),
                             datetype, limit))
    if len(result.ids) < result.count:
        raise SourceError(f"pubmed esearch: answer lists {len(result.ids)} of the {result.count} ids it counted")
    return result.ids


def parse_edate(text: str) -> date:
    """'2026/11/20' (or 2026-11-20) → date."""
    year, month, day = (int(p) for p in text.replace("-", "/").split("/"))
    return date(year, month, day)


def format_edate(day: date) -> str:
    """date → '2026/11/20', the form E-utilities' mindate/maxdate take."""
    return day.strftime("%Y/%m/%d")


def plan_windows(client: HttpClient, query: str, mindate: str, maxdate: str,
                 limit: int = SEARCH_LIMIT, datetype: str = "crdt") -> list[SearchResult]:
    """esearch the window; split it in halves (recursively) while it matches more than ``limit``.

    Never truncates: a single day above the limit raises SourceError.
    Returns the non-empty windows in date order.
    """
    result = esearch(client, query, mindate, maxdate, datetype)
    if result.count <= limit:
        return [result] if result.count else []
    start, end = parse_edate(mindate), parse_edate(maxdate)
    if start >= end:
        raise SourceError(f"pubmed: {result.count} records on {mindate} alone, more than one query "
                          f"can page ({limit}); cannot split further")
    middle = start + (end - start) // 2
    log.info("pubmed: %d records in %s-%s (more than %d): splitting the window", result.count,
             mindate, maxdate, limit)
    return (plan_windows(client, query, format_edate(start), format_edate(middle), limit, datetype)
            + plan_windows(client, query, format_edate(middle + timedelta(days=1)), format_edate(end), limit,
                           datetype))


# --- efetch -----------------------------------------------------------------------------------


@dataclass
class Batch:
    """One efetch range's outcome: records parsed, records refused, or the error that made the
    whole answer unusable (the server's fault: an error message, no records where some were due)."""

    retstart: int
    retmax: int
    records: list[dict] = field(default_factory=list)
    error: str | None = None
    record_errors: int = 0
    # (PMID or where it sat, why): records that could not be parsed, alone, on their own fetch
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    malformed: bool = False       # the XML itself could not be parsed (isolate by halving)
    requests: int = 1


# A batch is isolated record by record; but when more than this share of it is refused alone,
# the answer itself is broken (a proxy mangling every body), not its records: the batch fails
# and the window is kept, rather than quarantining everything and moving on.
MAX_QUARANTINE_SHARE = 0.1


def fetch_batches(client: HttpClient, windows: list[SearchResult], batch_size: int = DEFAULT_BATCH_SIZE):
    """Yield one ``Batch`` per efetch range over every window's history result."""
    for window in windows:
        for retstart in range(0, window.count, batch_size):
            retmax = min(batch_size, window.count - retstart)

            def fetch_range(start: int, size: int, window=window) -> tuple[Batch, bytes]:
                response = client.request("efetch.fcgi", method="POST", data={
                    "db": "pubmed", "WebEnv": window.webenv, "query_key": window.query_key,
                    "retstart": str(start), "retmax": str(size), "retmode": "xml"})
                return parse_batch(response.content, start, size), response.content

            yield isolate(fetch_range, retstart, retmax, where=lambda start, w=window: f"retstart {start} of {w.label}")


def fetch_by_ids(client: HttpClient, pmids: list[str], batch_size: int = DEFAULT_BATCH_SIZE):
    """Yield one ``Batch`` per efetch of up to ``batch_size`` PMIDs (same isolation)."""
    pmids = [str(p) for p in pmids]
    for offset in range(0, len(pmids), batch_size):
        chunk = pmids[offset:offset + batch_size]

        def fetch_range(start: int, size: int, chunk=chunk) -> tuple[Batch, bytes]:
            ids = chunk[start:start + size]
            response = client.request("efetch.fcgi", method="POST", data={
                "db": "pubmed", "id": ",".join(ids), "retmode": "xml"})
            return parse_batch(response.content, start, size), response.content

        yield isolate(fetch_range, 0, len(chunk), where=lambda start, chunk=chunk: chunk[start])


def isolate(fetch_range, retstart: int, retmax: int, where) -> Batch:
    """Fetch [retstart, retstart+retmax) with ``fetch_range(start, size) -> (Batch, body)``; if its
    XML cannot be parsed, fetch each half again, down to the single record, which is quarantined
    under its PMID (read from the raw bytes) or ``where(start)``."""
    limit = max(2, int(retmax * MAX_QUARANTINE_SHARE))
    outcome = Batch(retstart, retmax, requests=0)

    def visit(start: int, size: int) -> None:
        if len(outcome.quarantined) > limit:
            return  # the answer is broken, not its records: stop asking
        batch, body = fetch_range(start, size)
        outcome.requests += 1
        if not batch.malformed:
            outcome.records += batch.records
            outcome.quarantined += batch.quarantined
            outcome.record_errors += batch.record_errors
            outcome.error = outcome.error or batch.error
            return
        if size == 1:
            outcome.quarantined.append((_pmid_in(body) or where(start), batch.error))
            log.error("pubmed: record %s quarantined: %s", outcome.quarantined[-1][0], batch.error)
            return
        log.warning("pubmed efetch retstart=%d retmax=%d: %s; fetching it again in halves", start, size, batch.error)
        half = size // 2
        visit(start, half)
        visit(start + half, size - half)

    visit(retstart, retmax)
    if len(outcome.quarantined) > limit:
        first = outcome.quarantined[0][1][:120]
        outcome.error = (f"the answer is broken, not its records: {len(outcome.quarantined)} records at "
                         f"retstart={retstart} could not be parsed even alone (first: {first})")
        outcome.quarantined = []
        log.error("pubmed: %s", outcome.error)
    return outcome


_PMID_BYTES_RE = re.compile(rb"<PMID[^>]*>\s*(\d{1,9})\s*</PMID>")


def _pmid_in(body: bytes) -> str | None:
    """The first PMID in a raw answer that could not be parsed (invalid UTF-8, illegal characters)."""
    match = _PMID_BYTES_RE.search(body or b"")
    return match.group(1).decode("ascii") if match else None


def parse_batch(body: bytes, retstart: int = 0, retmax: int = 0) -> Batch:
    """Parse one efetch answer into a Batch; never raises for bad data (it is reported).

    ``malformed``: the answer looks like an article set but its XML cannot be parsed (one bad
    record can do that). A record that parses as XML but not as a citation is quarantined.
    """
    batch = Batch(retstart, retmax)
    try:
        articles, repairs = read_articles(body)
    except Exception as e:  # noqa: BLE001 - any parser failure means this answer is unusable
        batch.error = one_line(e)[:300]
        batch.malformed = b"<PubmedArticle" in (body or b"") or b"<PubmedBookArticle" in (body or b"")
        if not batch.malformed:
            log.error("pubmed efetch retstart=%d: unusable answer: %s", retstart, batch.error)
        return batch
    if retmax and not articles:
        # An empty answer where esearch promised records is a server fault, not the end of the
        # window: taken as success it would advance the state past records never stored.
        batch.error = f"efetch answered no records at retstart={retstart} (expected {retmax})"
        log.error("pubmed: %s; batch skipped", batch.error)
        return batch
    for position, article in enumerate(articles):
        try:
            batch.records.append(_noted(parse_record(article), repairs))
        except Exception as e:  # noqa: BLE001 - one odd record must not cost the batch
            batch.record_errors += 1
            batch.quarantined.append((_article_pmid(article) or f"record {position + 1} at retstart {retstart}",
                                      one_line(e)[:300]))
            log.error("pubmed efetch retstart=%d: record quarantined: %s: %s", retstart, type(e).__name__, e)
    return batch


def _article_pmid(article) -> str | None:
    try:
        citation = article.get("MedlineCitation") or article.get("BookDocument") or {}
        return flat(citation.get("PMID")) or None
    except Exception:  # noqa: BLE001 - a record odd enough to fail parsing may lack anything
        return None


# --- parsing: never reach the network for a DTD ---------------------------------------------

def _refuse_download(url, *args, **kwargs):
    raise OSError(f"spsbot never downloads DTDs (asked for {url})")


# Bio.Entrez falls back to downloading a DTD it does not ship. spsbot parses offline only: a
# missing DTD is replaced by the newest bundled one (below), and this guard makes any remaining
# download attempt fail instead of reaching the network.
EntrezParser.urlopen = _refuse_download

_DOCTYPE_RE = re.compile(rb'<!DOCTYPE\s+(\w+)\s+(?:PUBLIC\s+"[^"]*"|SYSTEM)\s+"([^"]+)"\s*>')
_FALLBACK_PREFIX = {b"PubmedArticleSet": "pubmed_"}


def _bundled_dtds() -> set[str]:
    names = set(os.listdir(EntrezParser.DataHandler.global_dtd_dir))
    local = EntrezParser.DataHandler.local_dtd_dir
    if local and os.path.isdir(local):
        names |= set(os.listdir(local))
    return names


def _newest_bundled(prefix: str) -> str:
    candidates = sorted(n for n in os.listdir(EntrezParser.DataHandler.global_dtd_dir)
                        if n.startswith(prefix) and n.endswith(".dtd"))
    # pubmed_YYMMDD.dtd: order by date, not by string (pubmed_020114 is 2002).
    return max(candidates, key=lambda n: _dtd_date(n))


def _dtd_date(name: str) -> str:
    digits = re.sub(r"\D", "", name)
    return ("19" if digits[:2] > "50" else "20") + digits if len(digits) == 6 else digits


def offline_xml(body: bytes) -> bytes:
    """Make an efetch answer parseable offline by Bio.Entrez, whatever DTD generation it names.

    The DOCTYPE's system id is rewritten to ``https://dtd.nlm.nih.gov/ncbi/pubmed/out/<file>``:
    NLM served ``http://www.ncbi.nlm.nih.gov/entrez/query/DTD/…`` (2008–2010) and
    ``…/corehtml/query/DTD/…`` URLs for years, and Biopython ≥ 1.86 refuses any DTD URL that is not
    https on an NLM host, though the file itself ships with Biopython and is read from disk by its
    name. A DTD Biopython does not ship is replaced by the newest bundled one; a bare
    ``<PubmedArticle>`` (no declaration) is wrapped in a set.
    """
    match = _DOCTYPE_RE.search(body[:4096])
    if match is None:
        return _declared(_bare_articles(body), _newest_bundled("pubmed_"))
    root, system_id = match.group(1), match.group(2).decode("ascii", "replace")
    filename = system_id.rsplit("/", 1)[-1]
    if filename not in _bundled_dtds():
        prefix = _FALLBACK_PREFIX.get(root)
        if prefix is None:
            raise ValueError(f"unknown document type {root.decode(errors='replace')} ({filename})")
        replacement = _newest_bundled(prefix)
        log.warning("pubmed: DTD %s is not bundled with Biopython; parsing with %s", filename, replacement)
        filename = replacement
    new_id = (DTD_BASE + filename).encode()
    return body if new_id == match.group(2) else body[:match.start(2)] + new_id + body[match.end(2):]


# Where NLM serves the PubMed DTDs today (https, an NLM host: the only form Biopython accepts).
DTD_BASE = "https://dtd.nlm.nih.gov/ncbi/pubmed/out/"


def _bare_articles(body: bytes) -> bytes:
    """A body without a DOCTYPE: its articles wrapped in a PubmedArticleSet, or ValueError."""
    stripped = body.lstrip()
    if stripped.startswith(b"<?xml"):
        stripped = stripped.split(b"?>", 1)[1].lstrip()
    if not stripped.startswith((b"<PubmedArticle", b"<PubmedBookArticle")):
        try:
            error = eutils_error(body)
        except ET.ParseError:
            error = None
        if error:
            raise ValueError(f"NCBI error: {error}")
        raise ValueError("not a PubmedArticleSet (no DOCTYPE and no <PubmedArticle>)")
    if stripped.startswith((b"<PubmedArticle>", b"<PubmedArticle ", b"<PubmedBookArticle")):
        stripped = b"<PubmedArticleSet>" + stripped + b"</PubmedArticleSet>"
    return stripped


def _declared(articles: bytes, dtd: str) -> bytes:
    return (b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle//EN" "'
            + (DTD_BASE + dtd).encode() + b'">\n' + articles)


def read_article_set(body: bytes) -> list:
    """Parse a PubmedArticleSet with Bio.Entrez, offline; return its PubmedArticle and
    PubmedBookArticle records.

    Bio.Entrez gives the set as a list of articles under the DTDs up to pubmed_150101 and as a
    dict {"PubmedArticle": [...], "PubmedBookArticle": [...]} from pubmed_180101 on.
    """
    data = offline_xml(body)
    # escape=True: text is XML-escaped while inline tags (<i>, <sub>…) stay literal, so markup
    # can be told from a "<" in the text when it is flattened (``flat``).
    try:
        parsed = Entrez.read(io.BytesIO(data), escape=True)
    except EntrezParser.ValidationError as e:
        # A record newer than its DTD (or than the DTDs Biopython ships) may hold elements the
        # DTD does not know: skip those rather than lose the batch.
        log.warning("pubmed: %s; parsing without DTD validation", e)
        parsed = Entrez.read(io.BytesIO(data), escape=True, validate=False)
    if isinstance(parsed, list):
        return [a for a in parsed if hasattr(a, "get")]
    if not hasattr(parsed, "get"):
        raise ValueError("efetch answer is not a PubmedArticleSet")
    return list(parsed.get("PubmedArticle", [])) + list(parsed.get("PubmedBookArticle", []))


# --- parsing: records -------------------------------------------------------------------------

def flat(value) -> str:
    """A field's text as Bio.Entrez gives it with ``escape=True`` (its own text XML-escaped,
    "&lt;5 years"; inline markup such as <i>, <sub>, MathML as tags): the markup dropped by a
    real HTML parser, character references decoded, whitespace collapsed."""
    if value is None:
        return ""
    return html_to_text(str(value))


_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}


def _month_number(text) -> int | None:
    text = flat(text).lower()
    if text.isdigit():
        number = int(text)
        return number if 1 <= number <= 12 else None
    return _MONTHS.get(text[:3])


def parse_pub_date(pub_date) -> tuple[str | None, int | None, str]:
    """(ISO date as precise as given, year, original text) from a PubDate element.

    Handles Year/Month/Day, Year+Season ("Spring", "May-Jun": a month range gives its first
    month) and MedlineDate ("1994 Sep-Dec", "1998 Dec-1999 Jan", "2000 Spring").
    """
    if not pub_date:
        return None, None, ""
    if pub_date.get("MedlineDate"):
        raw = flat(pub_date["MedlineDate"])
        year_match = re.search(r"\b(1[89]\d\d|20\d\d)\b", raw)
        if not year_match:
            return None, None, raw
        year = int(year_match.group(1))
        month = _month_number(raw[year_match.end():].strip().split("-")[0].split(" ")[0] or "")
        return (f"{year:04d}-{month:02d}" if month else f"{year:04d}"), year, raw
    year_text = flat(pub_date.get("Year"))
    if not year_text.isdigit():
        return None, None, ""
    year = int(year_text)
    raw_parts = [year_text]
    month = None
    if pub_date.get("Month"):
        month = _month_number(pub_date["Month"])
        raw_parts.append(flat(pub_date["Month"]))
    elif pub_date.get("Season"):
        season = flat(pub_date["Season"])
        raw_parts.append(season)
        month = _month_number(season.split("-")[0])  # "May-Jun" → May; "Spring" → year only
    day = flat(pub_date.get("Day"))
    if pub_date.get("Day"):
        raw_parts.append(day)
    if month and day.isdigit():
        return f"{year:04d}-{month:02d}-{int(day):02d}", year, " ".join(raw_parts)
    if month:
        return f"{year:04d}-{month:02d}", year, " ".join(raw_parts)
    return f"{year:04d}", year, " ".join(raw_parts)


def _entrez_and_create_dates(history) -> tuple[str | None, str | None]:
    """(Entrez date EDAT, create date CRDT) as ISO YYYY-MM-DD from a History (PubMedPubDate
    elements); each stands in for the other when it is missing.

    PubStatus "pubmed" is the Entrez date (EDAT) and "entrez" the create date (CRDT): NCBI sets
    EDAT to the publication date when a citation is added more than 12 months after it was
    published, while CRDT keeps the day it was added (NLM Technical Bulletin, Nov-Dec 2008).
    """
    dates = {}
    for entry in history or []:
        status = getattr(entry, "attributes", {}).get("PubStatus")
        if status in ("pubmed", "entrez") and status not in dates:
            dates[status] = _ymd(entry)
    return dates.get("pubmed") or dates.get("entrez"), dates.get("entrez") or dates.get("pubmed")


def _ymd(element) -> str | None:
    """A Year/Month/Day element (DateRevised, DateCompleted) as ISO, or None."""
    if not element or not flat(element.get("Year")).isdigit():
        return None
    month = _month_number(element.get("Month") or "1") or 1
    day = int(flat(element.get("Day"))) if flat(element.get("Day")).isdigit() else 1
    return f"{int(flat(element['Year'])):04d}-{month:02d}-{day:02d}"


def _authors(author_lists) -> list[str]:
    """"Last Initials" for people, the name itself for a CollectiveName. Editors are left out."""
    if not author_lists:
        return []
    if not isinstance(author_lists, list) or (author_lists and not isinstance(author_lists[0], list)):
        author_lists = [author_lists]
    chosen = [lst for lst in author_lists
              if getattr(lst, "attributes", {}).get("Type", "authors") == "authors"] or []
    names = []
    for author_list in chosen:
        for author in author_list:
            if author.get("CollectiveName"):
                names.append(flat(author["CollectiveName"]))
            elif author.get("LastName"):
                initials = flat(author.get("Initials")) or "".join(
                    p[0] for p in flat(author.get("ForeName")).split() if p)
                names.append(f"{flat(author['LastName'])} {initials}".strip())
    return [n for n in names if n]


def _abstract(abstract) -> tuple[str, list[dict]]:
    """(abstract text, sections): labelled sections become "LABEL: text" lines."""
    sections = []
    parts = (abstract or {}).get("AbstractText") or []
    if isinstance(parts, str):   # DTDs up to pubmed_100301: one plain-text AbstractText
        parts = [parts]
    for part in parts:
        text = flat(part)
        if not text:
            continue
        # attribute values come unescaped from Bio.Entrez (never markup): whitespace only
        label = " ".join((getattr(part, "attributes", {}).get("Label") or "").split()) or None
        section = {"label": label, "text": text}
        category = getattr(part, "attributes", {}).get("NlmCategory")
        if category:
            section["category"] = category
        sections.append(section)
    text = "\n".join(f"{s['label']}: {s['text']}" if s["label"] else s["text"] for s in sections)
    return text, sections


def _ids(id_list) -> dict[str, str]:
    out = {}
    for article_id in id_list or []:
        kind = getattr(article_id, "attributes", {}).get("IdType")
        if kind and kind not in out and flat(article_id):
            out[kind] = flat(article_id)
    return out


def _nct_ids(data_banks, *texts) -> list[str]:
    """NCT ids the record itself names: DataBankList (ClinicalTrials.gov) and its own text."""
    found = []
    for bank in data_banks or []:
        if flat(bank.get("DataBankName")).lower().replace(" ", "") in ("clinicaltrials.gov", "clinicaltrials"):
            for accession in bank.get("AccessionNumberList", []) or []:
                found.append(flat(accession).upper().replace(" ", ""))
    for text in texts:
        found += ["NCT" + m for m in NCT_RE.findall(text or "")]
    return list(dict.fromkeys(n for n in found if re.fullmatch(r"NCT\d{8}", n)))


def _corrections(comments) -> list[dict]:
    """Errata, retractions, comments, updates (not "Cites": those are the reference list)."""
    out = []
    for entry in comments or []:
        ref_type = getattr(entry, "attributes", {}).get("RefType")
        if not ref_type or ref_type == "Cites":
            continue
        item = {"type": ref_type}
        if entry.get("PMID"):
            item["pmid"] = flat(entry["PMID"])
        if entry.get("RefSource"):
            item["source"] = flat(entry["RefSource"])
        out.append(item)
    return out


def _volume_issue_pages(journal, pagination) -> dict:
    """The citation details a PubMed alert shows ("66(6):1116-1122"): JournalIssue Volume and Issue,
    Pagination MedlinePgn (else StartPage-EndPage). Absent parts are left out."""
    issue = journal.get("JournalIssue", {}) or {}
    pagination = pagination if isinstance(pagination, dict) else {}
    start, end = flat(pagination.get("StartPage")), flat(pagination.get("EndPage"))
    pages = flat(pagination.get("MedlinePgn")) or (f"{start}-{end}" if start and end else start)
    found = {"volume": flat(issue.get("Volume")), "issue": flat(issue.get("Issue")), "pages": pages}
    return {k: v for k, v in found.items() if v}


def _major(element) -> bool:
    return getattr(element, "attributes", {}).get("MajorTopicYN") == "Y"


def _major_topics(headings) -> list[str]:
    """The MeSH descriptors NLM's indexers marked as a major topic of the article (PubMed's
    [majr]): the descriptor starred, or one of its qualifiers ("Myasthenia Gravis/drug therapy*").
    The ranker reads them as weak labels (``bot.ranking.weak``)."""
    return [flat(h["DescriptorName"]) for h in headings
            if _major(h["DescriptorName"]) or any(_major(q) for q in h.get("QualifierName", []) or [])]


def _keywords(keyword_lists) -> list[str]:
    words = [flat(k) for kl in keyword_lists or [] for k in kl]
    return list(dict.fromkeys(w for w in words if w))


def parse_record(article) -> dict:
    """One PubmedArticle or PubmedBookArticle (as Bio.Entrez gives it) → a record dict."""
    if "BookDocument" in article:
        return _parse_book(article)
    citation, data = article["MedlineCitation"], article.get("PubmedData", {})
    art = citation["Article"]
    pmid = flat(citation["PMID"])
    title = flat(art.get("ArticleTitle")) or flat(art.get("VernacularTitle"))
    abstract, sections = _abstract(art.get("Abstract"))
    journal = art.get("Journal", {})
    pub_date, pub_year, pub_date_text = parse_pub_date(journal.get("JournalIssue", {}).get("PubDate"))
    ids = _ids(data.get("ArticleIdList"))
    locations = {getattr(e, "attributes", {}).get("EIdType"): flat(e) for e in art.get("ELocationID", [])}
    entrez_date, create_date = _entrez_and_create_dates(data.get("History"))
    if pub_year is None:
        for article_date in art.get("ArticleDate", []) or []:
            pub_date, pub_year, _ = parse_pub_date(article_date)
    if pub_year is None and (entrez_date or create_date):
        pub_year = int((entrez_date or create_date)[:4])
    pub_types = [flat(p) for p in art.get("PublicationTypeList", [])]
    corrections = _corrections(citation.get("CommentsCorrectionsList"))
    headings = citation.get("MeshHeadingList", []) or []
    extra = {"mesh_major": _major_topics(headings),
             "status": citation.attributes.get("Status") if hasattr(citation, "attributes") else None,
             "languages": [flat(x) for x in art.get("Language", [])],
             "pub_date_text": pub_date_text, "publication_status": flat(data.get("PublicationStatus")),
             "date_revised": _ymd(citation.get("DateRevised")),
             **_volume_issue_pages(journal, art.get("Pagination"))}
    if corrections:
        extra["corrections"] = corrections
    if "Retracted Publication" in pub_types or any(c["type"] == "RetractionIn" for c in corrections):
        extra["retracted"] = True
    return {
        "kind": "paper", "source": "pubmed", "pmid": pmid,
        "doi": ids.get("doi") or locations.get("doi"), "pmcid": ids.get("pmc"),
        "title": title or f"[PMID {pmid}]", "abstract": abstract or None, "abstract_sections": sections,
        "authors": _authors(art.get("AuthorList")), "journal": flat(journal.get("Title")) or None,
        "pub_date": pub_date, "pub_year": pub_year, "entrez_date": entrez_date, "create_date": create_date,
        "pub_types": pub_types,
        "mesh": [flat(h["DescriptorName"]) for h in headings],
        "keywords": _keywords(citation.get("KeywordList")),
        "nct_ids": _nct_ids(art.get("DataBankList"), title, abstract),
        "url": pubmed_url(pmid), "extra": {k: v for k, v in extra.items() if v},
    }


def _parse_book(article) -> dict:
    doc, data = article["BookDocument"], article.get("PubmedBookData", {})
    book = doc.get("Book", {})
    pmid = flat(doc["PMID"])
    book_title = flat(book.get("BookTitle"))
    title = flat(doc.get("ArticleTitle")) or book_title
    abstract, sections = _abstract(doc.get("Abstract"))
    pub_date, pub_year, pub_date_text = parse_pub_date(book.get("PubDate"))
    ids = _ids(doc.get("ArticleIdList"))
    entrez_date, create_date = _entrez_and_create_dates(data.get("History"))
    authors = _authors(doc.get("AuthorList")) or _authors(book.get("AuthorList"))
    pub_types = [flat(p) for p in doc.get("PublicationType", [])]
    publisher = flat((book.get("Publisher") or {}).get("PublisherName"))
    extra = {"book": True, "book_title": book_title, "publisher": publisher,
             "bookaccession": ids.get("bookaccession"), "pub_date_text": pub_date_text}
    return {
        "kind": "paper", "source": "pubmed", "pmid": pmid, "doi": ids.get("doi"), "pmcid": ids.get("pmc"),
        "title": title or f"[PMID {pmid}]", "abstract": abstract or None, "abstract_sections": sections,
        "authors": authors, "journal": book_title or publisher or None,
        "pub_date": pub_date, "pub_year": pub_year, "entrez_date": entrez_date, "create_date": create_date,
        "pub_types": pub_types, "mesh": [], "keywords": _keywords(doc.get("KeywordList")),
        "nct_ids": _nct_ids(None, title, abstract),
        "url": pubmed_url(pmid), "extra": {k: v for k, v in extra.items() if v},
    }


def parse_efetch(body: bytes) -> list[dict]:
    """Parse a whole efetch answer into records (salvaged as ``read_articles`` does); raises if
    the XML is unusable."""
    articles, repairs = read_articles(body)
    return [_noted(parse_record(a), repairs) for a in articles]


def read_articles(body: bytes) -> tuple[list, dict[str, list[str]]]:
    """``read_article_set``, and when the answer cannot be parsed only because of characters XML
    forbids (``&#x1;``, a raw control character) or bytes that are not UTF-8, the answer without
    them: (articles, PMID -> notes saying what was removed from which field). Raises the
    original error when that does not make it parseable (the record cannot be salvaged)."""
    try:
        return read_article_set(body), {}
    except Exception as error:  # noqa: BLE001 - any parser failure: try the salvage, else re-raise
        salvaged = salvage(body)
        if salvaged is None:
            raise
        try:
            articles = read_article_set(salvaged[0])
        except Exception:  # noqa: BLE001 - broken in another way too: report the first failure
            raise error from None
    repairs = notes(salvaged[1])
    for pmid, lines in repairs.items():
        log.warning("pubmed: record %s stored repaired: %s", pmid or "(outside any record)", "; ".join(lines))
    return articles, repairs


def _noted(record: dict, repairs: dict[str, list[str]]) -> dict:
    """The record with its repair notes (``extra["repaired"]``), if it was salvaged."""
    if repairs.get(record["pmid"]):
        record["extra"]["repaired"] = repairs[record["pmid"]]
    return record
