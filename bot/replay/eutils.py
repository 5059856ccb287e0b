"""An NCBI E-utilities emulator for ``LocalServer``: esearch + efetch over a set of PubMed records.

``eutils_responder(articles)`` takes ``<PubmedArticle>``/``<PubmedBookArticle>`` XML strings (or a
directory of ``.xml`` files, each one article or a whole ``PubmedArticleSet``) and answers like
PubMed, on a clock (default: the store's, ``SPSBOT_NOW``):

- **Dates, as PubMed keeps them.** Each record has a create date (CRDT: PubMedPubDate
  PubStatus="entrez", the day it entered PubMed), an Entrez date (EDAT: PubStatus="pubmed",
  back-dated by NCBI to the publication date when a citation is added more than 12 months after
  it was published), a modification date (MDAT: ``DateRevised``) and a publication date.
- **Time.** A record is visible from its create date on. Several articles with the same PMID are
  versions of one record: the one served is the latest whose ``DateRevised`` has come (an
  erratum link, MeSH headings or a retraction added later).
- ``esearch.fcgi``: date-range clauses in the term (``2026/11/14:2026/11/21[crdt]``, also
  ``[edat]``, ``[mdat]``, ``[dp]``), the ``datetype`` parameter (``crdt``/``edat``/``mdat``/
  ``pdat``) with ``mindate``/``maxdate`` or ``reldate`` (the last N days); ``usehistory=y``
  stores the result under a WebEnv/QueryKey; ``retstart``/``retmax`` page the IdList;
  ``rettype=count`` gives only the Count. Same XML shape (and DOCTYPE) as NCBI's. The rest of the
  term matches every record, unless ``match_terms=True``: then it is evaluated (phrases and words
  with ``[tiab]``/``[ti]``/``[ab]``/``[mh]``/``[pt]``/``[ot]`` or no tag, ``word*`` prefixes,
  AND/OR/NOT and parentheses), enough for a topic query and ``"retracted publication"[pt]``.
- ``efetch.fcgi``: by ``WebEnv`` + ``query_key`` + ``retstart``/``retmax``, or by ``id`` list,
  answering a ``PubmedArticleSet`` of the versions visible now. Like PubMed, it will not page past
  record 9,999 of one query.

Faults on cue, for tests: ``script`` maps an endpoint ("esearch"/"efetch") to Responses served
before the real answers (e.g. NCBI's real 429 JSON body), and ``max_per_second`` answers 429
like NCBI when requests come faster than that.

``backdate_article`` and ``revise_article`` derive the late-indexed and later-modified variants
of a real record that the completeness tests use (see tests/fixtures/pubmed/README.md).
"""

from __future__ import annotations

import re
import threading
import uuid
import weakref
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape

from bot.clock import now_iso
from bot.replay import Request, Response, demo_data_dir

ESEARCH_HEAD = ('<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch '
                '20060628//EN" "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n')
EFETCH_HEAD = ('<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January '
               '2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n')
# NCBI's real rate-limit answer (tests/fixtures/pubmed/biomcp_eutils_json_error_API_rate_limit_exceeded.json).
RATE_LIMIT_BODY = '{"error":"API rate limit exceeded","api-key":"127.0.0.1","count":"4","limit":"3"}'
PAGE_LIMIT = 9999
_ARTICLE_RE = re.compile(r"<(PubmedArticle|PubmedBookArticle)>.*?</\1>", re.DOTALL)
_ARTICLE_BYTES_RE = re.compile(rb"<(PubmedArticle|PubmedBookArticle)>.*?</\1>", re.DOTALL)
# Characters XML 1.0 forbids, raw or as a character reference below 0x20 (which also drops
# references to tab and newline: harmless for searching): a record holding one is served as it
# is (a fault PubMed has had); only the emulator's own reading of it skips them.
_XML_ILLEGAL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]|&#(?:x0*(?:1?[0-9a-fA-F])|0*(?:[0-9]|[12][0-9]|3[01]));")
# search field tag -> which date it ranges over
_DATE_TAGS = {"crdt": "crdt", "edat": "edat", "mdat": "mdat", "lr": "mdat", "dp": "pdat", "pdat": "pdat"}


def split_articles(xml: str | bytes) -> list:
    """The ``<PubmedArticle>``/``<PubmedBookArticle>`` elements of a set (or a lone article);
    bytes in, bytes out (a record that is not valid UTF-8 is served as it is)."""
    pattern = _ARTICLE_BYTES_RE if isinstance(xml, bytes) else _ARTICLE_RE
    return [m.group(0) for m in pattern.finditer(xml)]


def load_articles(source) -> list:
    """Article XML (strings, or bytes for files that are not UTF-8) from a list of strings/bytes
    or a directory of .xml files."""
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        texts = [_read(p) for p in sorted(Path(source).glob("*.xml"))]
    else:
        texts = list(source)
    return [article for text in texts for article in split_articles(text)]


def _read(path: Path) -> str | bytes:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


# --- one record's dates and searchable text -------------------------------------------------

def _ymd(element) -> str | None:
    if element is None or not (element.findtext("Year") or "").strip().isdigit():
        return None
    month = (element.findtext("Month") or "1").strip()
    month = int(month) if month.isdigit() else _MONTHS.get(month[:3].lower(), 1)
    day = (element.findtext("Day") or "1").strip()
    return f"{int(element.findtext('Year')):04d}/{month:02d}/{int(day) if day.isdigit() else 1:02d}"


_MONTHS = {m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                       "nov", "dec"], start=1)}


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


@dataclass(eq=False)  # compared and hashed by identity: the term cache keys on the record itself
class Record:
    """One version of a PubMed record as the emulator searches it."""

    pmid: str
    xml: str | bytes
    crdt: str                     # YYYY/MM/DD
    edat: str
    mdat: str
    pdat: str
    fields: dict[str, list[list[str]]] = field(default_factory=dict)  # tag -> token lists


def read_record(article: str | bytes) -> Record:
    """Parse one article's XML into its PMID, dates and searchable token lists (the emulator
    reads past characters XML forbids and bytes that are not UTF-8; it serves them unchanged)."""
    text = article.decode("utf-8", errors="replace") if isinstance(article, bytes) else article
    root = ET.fromstring(_XML_ILLEGAL_RE.sub("", text))
    pmid = (root.findtext(".//PMID") or "").strip()
    history = {d.get("PubStatus"): _ymd(d) for d in root.iter("PubMedPubDate")}
    crdt = history.get("entrez") or history.get("pubmed") or "1900/01/01"
    edat = history.get("pubmed") or history.get("entrez") or crdt
    pub = root.find(".//JournalIssue/PubDate")
    if pub is None:
        pub = root.find(".//Book/PubDate")
    pdat = _ymd(pub) if pub is not None else None
    if pdat is None and pub is not None and pub.findtext("MedlineDate"):
        year = re.search(r"\d{4}", pub.findtext("MedlineDate"))
        pdat = f"{year.group(0)}/01/01" if year else None
    mdat = _ymd(root.find(".//DateRevised")) or crdt

    def texts(path: str) -> list[list[str]]:
        return [_tokens("".join(e.itertext())) for e in root.iterfind(path)]

    title = texts(".//ArticleTitle") + texts(".//BookTitle")
    abstract = texts(".//AbstractText")
    fields = {"ti": title, "ab": abstract, "tiab": title + abstract, "mh": texts(".//MeshHeading/DescriptorName"),
              "pt": texts(".//PublicationType"), "ot": texts(".//Keyword")}
    fields["majr"] = fields["mh"]
    fields["tw"] = fields["all"] = fields["tiab"] + fields["mh"] + fields["ot"] + fields["pt"]
    return Record(pmid, article, crdt, edat, mdat, pdat or edat, fields)


# --- the term: a small evaluator of PubMed's boolean syntax ----------------------------------

_TOKEN_RE = re.compile(r'\(|\)|"[^"]*"(?:\s*\[[^\]]*\])?|[^\s()"]+(?:\s*\[[^\]]*\])?')


def _norm_date(text: str, end: bool = False) -> str:
    """'2024', '2024/05', '2024/05/17' → comparable YYYY/MM/DD (a bound covers its whole period)."""
    parts = [p for p in re.split(r"[/-]", text.strip()) if p]
    year = int(parts[0])
    month = int(parts[1]) if len(parts) > 1 else (12 if end else 1)
    day = int(parts[2]) if len(parts) > 2 else (31 if end else 1)
    return f"{year:04d}/{month:02d}/{day:02d}"


def _leaf(token: str, match_terms: bool) -> Callable[[Record], bool]:
    """A predicate for one search term (a phrase or word, maybe tagged, or a date range)."""
    tag = ""
    tagged = re.match(r'^(.*?)\s*\[([^\]]*)\]$', token, re.S)
    if tagged:
        token, tag = tagged.group(1), tagged.group(2).strip().lower()
    text = token.strip().strip('"')
    if tag in _DATE_TAGS:
        low, _, high = text.partition(":")
        low, high = _norm_date(low), _norm_date(high or low, end=True)
        kind = _DATE_TAGS[tag]
        return lambda r: low <= getattr(r, kind) <= high
    if not match_terms:
        return lambda r: True
    return _text_leaf(text, tag)


@lru_cache(maxsize=4096)
def _text_leaf(text: str, tag: str) -> Callable[[Record], bool]:
    """A phrase or word in a field, as a predicate that remembers its answer per record (a
    record version never changes; the same topic query is asked every week)."""
    words = _tokens(text.replace("*", " *"))
    prefix = text.endswith("*")
    scope = {"": "all", "tiab": "tiab", "title/abstract": "tiab", "ti": "ti", "title": "ti", "ab": "ab",
             "mh": "mh", "mesh": "mh", "mesh terms": "mh", "majr": "majr", "pt": "pt",
             "publication type": "pt", "ot": "ot", "kw": "ot", "tw": "tw", "all": "all"}.get(tag, "all")
    # token sequences as space-joined text: a phrase is a substring on word boundaries
    needle = re.compile(r"(?:^| )" + re.escape(" ".join(words)) + (r"" if prefix else r"(?: |$)"))
    answers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def matches(record: Record) -> bool:
        answer = answers.get(record)
        if answer is None:
            answer = answers[record] = bool(words) and any(needle.search(" ".join(tokens))
                                                           for tokens in record.fields.get(scope, []))
        return answer
    return matches


def compile_term(term: str, match_terms: bool = False) -> Callable[[Record], bool]:
    """The term as a predicate over records: OR, AND (or nothing) and NOT between terms and
    parenthesised groups, as PubMed reads them (left to right, AND binding tighter than OR)."""
    tokens = _TOKEN_RE.findall(term or "")
    position = 0

    def peek():
        return tokens[position] if position < len(tokens) else None

    def take():
        nonlocal position
        position += 1
        return tokens[position - 1]

    def primary():
        token = take()
        if token == "(":
            inner = expression()
            if peek() == ")":
                take()
            return inner
        return _leaf(token, match_terms)

    def conjunction():
        left = primary()
        while peek() not in (None, ")", "OR"):
            operator = take() if peek() in ("AND", "NOT") else "AND"
            right = primary()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right) if operator == "AND" else \
                (lambda a, b: lambda r: a(r) and not b(r))(left, right)
        return left

    def expression():
        left = conjunction()
        while peek() == "OR":
            take()
            right = conjunction()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    return expression() if tokens else (lambda r: True)


# --- deriving variants of real records (late additions, later modifications) ---------------

def _stamp(day: date) -> str:
    return f"<Year>{day.year}</Year><Month>{day.month:02d}</Month><Day>{day.day:02d}</Day>"


def _set_history(article: str, status: str, day: date) -> str:
    pattern = re.compile(r'(<PubMedPubDate PubStatus="' + status + r'">)\s*<Year>\d+</Year>\s*<Month>\d+</Month>\s*'
                         r'<Day>\d+</Day>')
    if pattern.search(article):
        return pattern.sub(lambda m: m.group(1) + _stamp(day), article, count=1)
    entry = f'<PubMedPubDate PubStatus="{status}">{_stamp(day)}</PubMedPubDate>'
    return re.sub(r"<History>", "<History>" + entry, article, count=1)


def _set_revised(article: str, day: date) -> str:
    stamp = f"<DateRevised>{_stamp(day)}</DateRevised>"
    if "<DateRevised>" in article:
        return re.sub(r"<DateRevised>.*?</DateRevised>", stamp, article, count=1, flags=re.S)
    return re.sub(r'(<PMID Version="\d+">\d+</PMID>)', lambda m: m.group(1) + stamp, article, count=1)


def backdate_article(article: str, added: date, published: date) -> str:
    """A real record as PubMed stores a citation added more than 12 months after publication:
    create date (PubStatus "entrez") = ``added``, Entrez date (PubStatus "pubmed") = the
    publication date, ``DateRevised`` = ``added``."""
    article = _set_history(article, "entrez", added)
    article = _set_history(article, "pubmed", published)
    return _set_revised(article, added)


def revise_article(article: str, revised: date, *, mesh: tuple[str, ...] = (), pub_types: tuple[str, ...] = (),
                   corrections: tuple[tuple[str, str], ...] = ()) -> str:
    """A later version of a real record, as PubMed serves it after modifying it on ``revised``:
    ``DateRevised`` moved, MeSH headings, publication types and CommentsCorrections
    (``(RefType, PMID)``, e.g. ``("RetractionIn", "99999999")``) added."""
    article = _set_revised(article, revised)
    if mesh:
        headings = "".join(f'<MeshHeading><DescriptorName UI="D000000" MajorTopicYN="N">{m}</DescriptorName>'
                           f"</MeshHeading>" for m in mesh)
        if "<MeshHeadingList>" in article:
            article = article.replace("<MeshHeadingList>", "<MeshHeadingList>" + headings, 1)
        else:
            article = article.replace("</MedlineCitation>", f"<MeshHeadingList>{headings}</MeshHeadingList>"
                                      "</MedlineCitation>", 1)
    for pub_type in pub_types:
        entry = f'<PublicationType UI="D000000">{pub_type}</PublicationType>'
        article = article.replace("</PublicationTypeList>", entry + "</PublicationTypeList>", 1)
    if corrections:
        refs = "".join(f'<CommentsCorrections RefType="{kind}"><RefSource>{kind}</RefSource>'
                       f'<PMID Version="1">{pmid}</PMID></CommentsCorrections>' for kind, pmid in corrections)
        if "<CommentsCorrectionsList>" in article:
            article = article.replace("<CommentsCorrectionsList>", "<CommentsCorrectionsList>" + refs, 1)
        else:
            article = re.sub(r"(<MeshHeadingList>|</MedlineCitation>)",
                             lambda m: f"<CommentsCorrectionsList>{refs}</CommentsCorrectionsList>" + m.group(1),
                             article, count=1)
    return article


def article_key(article: str) -> tuple[str, str]:
    """(PMID, create date YYYY/MM/DD) of one article's XML."""
    record = read_record(article)
    return record.pmid, record.crdt


def clone_article(article: str, pmid: str | int, entrez: date, distinct: bool = True) -> str:
    """A copy of a real article's XML under a new PMID, created (and Entrez-dated) on ``entrez``
    (for volume tests).

    ``distinct``: also make its DOI and title unique, so a store that matches papers by DOI or
    title keeps every copy as its own item.
    """
    if distinct:
        article = re.sub(r'(IdType="doi"[^>]*>)([^<]+)(<)', lambda m: f"{m.group(1)}{m.group(2)}.c{pmid}{m.group(3)}",
                         article)
        article = re.sub(r"(</ArticleTitle>|</BookTitle>)", f" (copy {pmid})\\1", article)
    article = re.sub(r"<PMID Version=\"(\d+)\">\d+</PMID>", f'<PMID Version="\\1">{pmid}</PMID>', article, count=1)
    article = re.sub(r'<ArticleId IdType="pubmed">\d+</ArticleId>', f'<ArticleId IdType="pubmed">{pmid}</ArticleId>',
                     article, count=1)
    stamp = _stamp(entrez)
    return re.sub(r'(<PubMedPubDate PubStatus="(?:entrez|pubmed)">)\s*<Year>\d+</Year>\s*<Month>\d+</Month>\s*'
                  r'<Day>\d+</Day>',
                  lambda m: m.group(1) + stamp, article)


def store_today() -> str:
    """Today on spsbot's clock (``SPSBOT_NOW`` in tests and the demo) as YYYY/MM/DD: the emulated
    PubMed lives on the same day as the bot that asks it."""
    return now_iso()[:10].replace("-", "/")


class EutilsEmulator:
    """The responder: call it with a ``Request``; it returns a ``Response``.

    ``today``: a function giving the emulator's date (YYYY/MM/DD); None = every record and its
    latest version is visible whatever the date.
    """

    def __init__(self, articles, script: dict[str, list[Response]] | None = None,
                 max_per_second: float | None = None, page_limit: int = PAGE_LIMIT,
                 today: Callable[[], str] | None = store_today, match_terms: bool = False):
        self.versions: dict[str, list[Record]] = {}
        for article in load_articles(articles):
            record = read_record(article)
            self.versions.setdefault(record.pmid, []).append(record)
        for versions in self.versions.values():
            versions.sort(key=lambda r: r.mdat)
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.max_per_second = max_per_second
        self.page_limit = page_limit
        self.today = today
        self.match_terms = match_terms
        self.histories: dict[tuple[str, str], list[str]] = {}
        self.served = {"esearch": 0, "efetch": 0}
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        endpoint = request.path.rstrip("/").rsplit("/", 1)[-1].replace(".fcgi", "")
        with self._lock:
            if endpoint in self.script and self.script[endpoint]:
                return self.script[endpoint].pop(0)
            if self._too_fast(request.at):
                return Response(429, RATE_LIMIT_BODY, "application/json", headers={"Retry-After": "1"})
            self.served[endpoint] = self.served.get(endpoint, 0) + 1
            if endpoint == "esearch":
                return self.esearch(request)
            if endpoint == "efetch":
                return self.efetch(request)
        return Response(404, f"unknown E-utility {endpoint!r}", "text/plain")

    def _too_fast(self, at: float) -> bool:
        if not self.max_per_second:
            return False
        self._recent.append(at)
        while self._recent and self._recent[0] <= at - 1.0:
            self._recent.popleft()
        return len(self._recent) > self.max_per_second

    def visible(self, pmid: str) -> Record | None:
        """The version of a record PubMed serves today (None before its create date)."""
        versions = self.versions.get(pmid) or []
        if not versions:
            return None
        if self.today is None:
            return versions[-1]
        today = self.today()
        if versions[0].crdt > today:
            return None
        current = [v for v in versions if v.mdat <= today]
        return current[-1] if current else versions[0]

    def records(self) -> list[Record]:
        return [r for r in (self.visible(p) for p in self.versions) if r is not None]

    def search(self, term: str, datetype: str | None = None, mindate: str | None = None,
               maxdate: str | None = None, reldate: str | None = None) -> list[str]:
        """PMIDs matching the term and the date limits, newest Entrez date first (PubMed's order)."""
        predicate = compile_term(term, self.match_terms)
        kind = {"crdt": "crdt", "edat": "edat", "mdat": "mdat", "pdat": "pdat"}.get((datetype or "").lower())
        low = high = None
        if kind and reldate:
            today = date.fromisoformat((self.today() if self.today else "9999/12/31").replace("/", "-"))
            low = (today - timedelta(days=int(reldate))).strftime("%Y/%m/%d")
            high = today.strftime("%Y/%m/%d")
        elif kind and mindate and maxdate:
            low, high = _norm_date(mindate), _norm_date(maxdate, end=True)
        found = [r for r in self.records() if predicate(r)
                 and (low is None or low <= getattr(r, kind) <= high)]
        return [r.pmid for r in sorted(found, key=lambda r: (r.edat, int(r.pmid)), reverse=True)]

    def esearch(self, request: Request) -> Response:
        if not request.param("term"):
            return Response(200, ESEARCH_HEAD + "<eSearchResult><ERROR>Empty term and query_key - nothing todo"
                                                "</ERROR></eSearchResult>")
        pmids = self.search(request.param("term"), request.param("datetype"), request.param("mindate"),
                            request.param("maxdate"), request.param("reldate"))
        if request.param("rettype") == "count":
            return Response(200, ESEARCH_HEAD + f"<eSearchResult>\n\t<Count>{len(pmids)}</Count>\n</eSearchResult>\n")
        retstart, retmax = int(request.param("retstart", "0")), int(request.param("retmax", "20"))
        history = ""
        if request.param("usehistory") == "y":
            webenv = request.param("WebEnv") or "MCID_" + uuid.uuid4().hex[:24]
            query_key = str(sum(1 for w, _ in self.histories if w == webenv) + 1)
            self.histories[(webenv, query_key)] = pmids
            history = f"<QueryKey>{query_key}</QueryKey><WebEnv>{webenv}</WebEnv>"
        ids = "".join(f"<Id>{p}</Id>\n" for p in pmids[retstart:retstart + retmax])
        body = (f"<eSearchResult><Count>{len(pmids)}</Count><RetMax>{min(retmax, max(0, len(pmids) - retstart))}"
                f"</RetMax><RetStart>{retstart}</RetStart>{history}<IdList>\n{ids}</IdList><TranslationSet/>"
                f"<QueryTranslation>{escape(request.param('term'))}</QueryTranslation></eSearchResult>\n")
        return Response(200, ESEARCH_HEAD + body)

    def efetch(self, request: Request) -> Response:
        if request.param("id"):
            pmids = [p.strip() for p in request.param("id").split(",") if p.strip()]
        else:
            key = (request.param("WebEnv"), request.param("query_key"))
            if key not in self.histories:
                return Response(200, '<?xml version="1.0" encoding="UTF-8" ?>\n<eFetchResult>\n\t<ERROR>'
                                     f'Unable to obtain query #{key[1]}</ERROR>\n</eFetchResult>\n')
            retstart, retmax = int(request.param("retstart", "0")), int(request.param("retmax", "20"))
            if retstart + retmax > self.page_limit + 1:
                return Response(200, '<?xml version="1.0" encoding="UTF-8" ?>\n<eFetchResult>\n\t<ERROR>'
                                     'Search Backend failed: cannot page past 9999</ERROR>\n</eFetchResult>\n')
            pmids = self.histories[key][retstart:retstart + retmax]
        shown = [self.visible(p) for p in pmids]
        articles = b"\n".join(r.xml if isinstance(r.xml, bytes) else r.xml.encode("utf-8")
                               for r in shown if r is not None)
        return Response(200, (EFETCH_HEAD + "<PubmedArticleSet>\n").encode("utf-8") + articles
                        + b"\n</PubmedArticleSet>\n")


def eutils_responder(articles, **options) -> EutilsEmulator:
    """A ``LocalServer`` responder emulating esearch/efetch over ``articles`` (see module doc)."""
    return EutilsEmulator(articles, **options)


def eutils_demo_responder(version: int = 1) -> EutilsEmulator:
    """Serve the bundled demo records (``bot/demo_data/pubmed/``; they have one version only)."""
    if version != 1:
        raise ValueError(f"the PubMed demo data has version 1 only, not {version}")
    return eutils_responder(demo_data_dir("pubmed"))
