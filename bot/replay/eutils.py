"""An NCBI E-utilities emulator for ``LocalServer``: esearch + efetch over a set of PubMed records.

``eutils_responder(articles)`` takes ``<PubmedArticle>``/``<PubmedBookArticle>`` XML strings (or a
directory of ``.xml`` files, each one article or a whole ``PubmedArticleSet``) and answers:

- ``esearch.fcgi``: every record matches the term; ``datetype=edat`` + ``mindate``/``maxdate``
  filter by each record's Entrez date (PubMedPubDate PubStatus="entrez", else "pubmed");
  ``usehistory=y`` stores the result under a WebEnv/QueryKey; ``retstart``/``retmax`` page the
  IdList; ``rettype=count`` gives only the Count. Same XML shape (and DOCTYPE) as NCBI's.
- ``efetch.fcgi``: by ``WebEnv`` + ``query_key`` + ``retstart``/``retmax``, or by ``id`` list,
  answering a ``PubmedArticleSet``. Like PubMed, it will not page past record 9,999 of one query.

Faults on cue, for tests: ``script`` maps an endpoint ("esearch"/"efetch") to Responses served
before the real answers (e.g. NCBI's real 429 JSON body), and ``max_per_second`` answers 429
like NCBI when requests come faster than that.
"""

from __future__ import annotations

import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from datetime import date
from pathlib import Path

from bot.replay import Request, Response

ESEARCH_HEAD = ('<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch '
                '20060628//EN" "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n')
EFETCH_HEAD = ('<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January '
               '2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n')
# NCBI's real rate-limit answer (tests/fixtures/pubmed/biomcp_eutils_json_error_API_rate_limit_exceeded.json).
RATE_LIMIT_BODY = '{"error":"API rate limit exceeded","api-key":"127.0.0.1","count":"4","limit":"3"}'
PAGE_LIMIT = 9999
_ARTICLE_RE = re.compile(r"<(PubmedArticle|PubmedBookArticle)>.*?</\1>", re.DOTALL)


def split_articles(xml: str) -> list[str]:
    """The ``<PubmedArticle>``/``<PubmedBookArticle>`` elements of a set (or a lone article)."""
    return [m.group(0) for m in _ARTICLE_RE.finditer(xml)]


def load_articles(source) -> list[str]:
    """Article XML strings from a list of strings or a directory of .xml files."""
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        texts = [p.read_text(encoding="utf-8") for p in sorted(Path(source).glob("*.xml"))]
    else:
        texts = list(source)
    return [article for text in texts for article in split_articles(text)]


def article_key(article: str) -> tuple[str, str]:
    """(PMID, Entrez date YYYY/MM/DD) of one article's XML."""
    root = ET.fromstring(article)
    pmid = root.findtext(".//PMID")
    dates = {d.get("PubStatus"): d for d in root.iter("PubMedPubDate")}
    entry = dates.get("entrez") or dates.get("pubmed")
    if entry is None:
        return pmid, "1900/01/01"
    return pmid, "{:04d}/{:02d}/{:02d}".format(int(entry.findtext("Year")), int(entry.findtext("Month") or 1),
                                               int(entry.findtext("Day") or 1))


def clone_article(article: str, pmid: str | int, entrez: date, distinct: bool = True) -> str:
    """A copy of a real article's XML under a new PMID and Entrez date (for volume tests).

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
    stamp = f"<Year>{entrez.year}</Year><Month>{entrez.month:02d}</Month><Day>{entrez.day:02d}</Day>"
    return re.sub(r'(<PubMedPubDate PubStatus="(?:entrez|pubmed)">)\s*<Year>\d+</Year>\s*<Month>\d+</Month>\s*'
                  r'<Day>\d+</Day>',
                  lambda m: m.group(1) + stamp, article)


class EutilsEmulator:
    """The responder: call it with a ``Request``; it returns a ``Response``."""

    def __init__(self, articles, script: dict[str, list[Response]] | None = None,
                 max_per_second: float | None = None, page_limit: int = PAGE_LIMIT):
        self.articles: dict[str, str] = {}
        self.edat: dict[str, str] = {}
        for article in load_articles(articles):
            pmid, edat = article_key(article)
            self.articles[pmid], self.edat[pmid] = article, edat
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.max_per_second = max_per_second
        self.page_limit = page_limit
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

    def matching(self, mindate: str | None, maxdate: str | None) -> list[str]:
        """PMIDs with an Entrez date in [mindate, maxdate], newest first (PubMed's default order)."""
        low = _norm_date(mindate) if mindate else "0000/00/00"
        high = _norm_date(maxdate, end=True) if maxdate else "9999/99/99"
        pmids = [p for p, d in self.edat.items() if low <= d <= high]
        return sorted(pmids, key=lambda p: (self.edat[p], int(p)), reverse=True)

    def esearch(self, request: Request) -> Response:
        if not request.param("term"):
            return Response(200, ESEARCH_HEAD + "<eSearchResult><ERROR>Empty term and query_key - nothing todo"
                                                "</ERROR></eSearchResult>")
        use_dates = request.param("datetype", "edat") == "edat"
        pmids = self.matching(request.param("mindate") if use_dates else None,
                              request.param("maxdate") if use_dates else None)
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
                f"<QueryTranslation>{_xml_escape(request.param('term'))}</QueryTranslation></eSearchResult>\n")
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
        articles = "\n".join(self.articles[p] for p in pmids if p in self.articles)
        return Response(200, EFETCH_HEAD + "<PubmedArticleSet>\n" + articles + "\n</PubmedArticleSet>\n")


def _norm_date(text: str, end: bool = False) -> str:
    """'2024', '2024/05', '2024/05/17' → comparable YYYY/MM/DD (a bound covers its whole period)."""
    parts = [p for p in re.split(r"[/-]", text.strip()) if p]
    year = int(parts[0])
    month = int(parts[1]) if len(parts) > 1 else (12 if end else 1)
    day = int(parts[2]) if len(parts) > 2 else (31 if end else 1)
    return f"{year:04d}/{month:02d}/{day:02d}"


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def eutils_responder(articles, **options) -> EutilsEmulator:
    """A ``LocalServer`` responder emulating esearch/efetch over ``articles`` (see module doc)."""
    return EutilsEmulator(articles, **options)
