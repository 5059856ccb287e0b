"""What Biopython itself reads from a PubMed efetch file: the reference spsbot's reading is held to.

``library_records(body)`` parses the bytes with ``Bio.Entrez.read`` alone, changing only what
Biopython ≥ 1.86 cannot take as NLM served it (an ``http://`` DTD URL becomes ``https://``; a
bare ``<PubmedArticle>`` is given the set and DOCTYPE efetch wraps it in) and falling back to
``validate=False`` (Biopython's own option) when a record holds elements its DTD lacks. Each
record's fields are the library's values with the inline markup flattened by ElementTree (a
parser independent of spsbot's) and whitespace collapsed: the one difference allowed.

``differences(ours, reference)`` names the fields where a spsbot record says something else.
Used by tests/test_pubmed_corpus.py and bench/pubmed_corpus.py.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from Bio import Entrez
from Bio.Entrez import Parser

FIXTURES = Path(__file__).parent / "fixtures"
FIELDS = ("title", "abstract_sections", "authors", "journal", "pub_year", "doi", "pub_types", "mesh")

_HTTP_DTD = re.compile(rb'(<!DOCTYPE[^>]*")http://')
_SET_HEAD = (b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January '
             b'2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n')

# NLM's PubMed DTD generations, and the DOCTYPE each was served with (public id, system id).
GENERATION_URLS = {
    "08": "http://www.ncbi.nlm.nih.gov/entrez/query/DTD/", "09": "http://www.ncbi.nlm.nih.gov/entrez/query/DTD/",
    "10": "http://www.ncbi.nlm.nih.gov/entrez/query/DTD/", "11": "http://www.ncbi.nlm.nih.gov/corehtml/query/DTD/",
    "12": "http://www.ncbi.nlm.nih.gov/corehtml/query/DTD/", "13": "http://www.ncbi.nlm.nih.gov/corehtml/query/DTD/",
    "14": "http://www.ncbi.nlm.nih.gov/corehtml/query/DTD/", "15": "http://www.ncbi.nlm.nih.gov/corehtml/query/DTD/",
}
_MONTH = {"01": "January", "03": "March", "05": "May", "06": "June"}


def generations() -> list[str]:
    """Every pubmed_YYMMDD.dtd from 2008 on that Biopython ships (NLM's generations)."""
    found = sorted(p.name[:-4] for p in Path(Parser.DataHandler.global_dtd_dir).glob("pubmed_*.dtd"))
    return [n for n in found if n[7:9] >= "08"]


def declared_as(body: bytes, generation: str) -> bytes:
    """``body`` with its DOCTYPE replaced by the one NLM served under ``generation``
    (e.g. "pubmed_100101": 1st January 2010, an http URL under /entrez/query/DTD/)."""
    yy, mm, dd = generation[7:9], generation[9:11], generation[11:13]
    url = GENERATION_URLS.get(yy, "https://dtd.nlm.nih.gov/ncbi/pubmed/out/") + generation + ".dtd"
    doctype = (f'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, {int(dd)}st {_MONTH[mm]} '
               f'20{yy}//EN" "{url}">').encode()
    return re.sub(rb"<!DOCTYPE[^>]*>", doctype, body, count=1)


def library_records(body: bytes) -> list[dict]:
    """The records of an efetch file as Bio.Entrez reads them, reduced to ``FIELDS``."""
    if b"<!DOCTYPE" not in body[:4096]:
        body = _SET_HEAD + b"<PubmedArticleSet>" + body.strip() + b"</PubmedArticleSet>"
    body = _HTTP_DTD.sub(rb"\1https://", body, count=1)
    try:
        parsed = Entrez.read(io.BytesIO(body), escape=True)
    except Parser.ValidationError:
        parsed = Entrez.read(io.BytesIO(body), escape=True, validate=False)
    if isinstance(parsed, list):   # DTDs up to pubmed_150101: the set is a list of articles
        articles = list(parsed)
    else:
        articles = list(parsed.get("PubmedArticle", [])) + list(parsed.get("PubmedBookArticle", []))
    return [_book(a) if "BookDocument" in a else _article(a) for a in articles]


def text(value) -> str:
    """A value as Bio.Entrez gives it (escape=True), markup flattened by ElementTree."""
    if value is None:
        return ""
    return " ".join("".join(ET.fromstring(f"<v>{value}</v>").itertext()).split())


def _attr(element, name):
    return getattr(element, "attributes", {}).get(name)


def _sections(abstract) -> list[tuple[str | None, str]]:
    parts = (abstract or {}).get("AbstractText") or []
    if isinstance(parts, str):
        parts = [parts]
    # Bio.Entrez gives attribute values as they are (unescaped, never markup)
    found = [(" ".join((_attr(p, "Label") or "").split()) or None, text(p)) for p in parts]
    return [(label, body) for label, body in found if body]


def _authors(author_list) -> list[str]:
    if not author_list:
        return []
    lists = author_list if author_list and isinstance(author_list[0], list) else [author_list]
    names = []
    for one in lists:
        if (_attr(one, "Type") or "authors") != "authors":
            continue
        for author in one:
            if author.get("CollectiveName"):
                names.append(text(author["CollectiveName"]))
            elif author.get("LastName"):
                names.append(f"{text(author['LastName'])} {text(author.get('Initials'))}".strip())
    return names


def _year(pub_date) -> int | None:
    pub_date = pub_date or {}
    if pub_date.get("Year"):
        return int(text(pub_date["Year"]))
    match = re.search(r"\b(1[89]\d\d|20\d\d)\b", text(pub_date.get("MedlineDate")))
    return int(match.group(1)) if match else None


def _id(id_list, kind: str) -> str | None:
    return next((text(i) for i in id_list or [] if _attr(i, "IdType") == kind), None)


def _article(article) -> dict:
    citation = article["MedlineCitation"]
    art = citation["Article"]
    journal = art.get("Journal", {})
    doi = _id(article.get("PubmedData", {}).get("ArticleIdList"), "doi") or next(
        (text(e) for e in art.get("ELocationID", []) if _attr(e, "EIdType") == "doi"), None)
    return {"pmid": text(citation["PMID"]), "title": text(art.get("ArticleTitle")),
            "abstract_sections": _sections(art.get("Abstract")), "authors": _authors(art.get("AuthorList")),
            "journal": text(journal.get("Title")) or None,
            "pub_year": _year(journal.get("JournalIssue", {}).get("PubDate")), "doi": doi,
            "pub_types": [text(p) for p in art.get("PublicationTypeList", [])],
            "mesh": [text(h["DescriptorName"]) for h in citation.get("MeshHeadingList", []) or []]}


def _book(article) -> dict:
    doc = article["BookDocument"]
    book = doc.get("Book", {})
    return {"pmid": text(doc["PMID"]), "title": text(doc.get("ArticleTitle")) or text(book.get("BookTitle")),
            "abstract_sections": _sections(doc.get("Abstract")),
            "authors": _authors(doc.get("AuthorList")) or _authors(book.get("AuthorList")),
            "journal": text(book.get("BookTitle")) or None, "pub_year": _year(book.get("PubDate")),
            "doi": _id(doc.get("ArticleIdList"), "doi"),
            "pub_types": [text(p) for p in doc.get("PublicationType", [])], "mesh": []}


def ours(record: dict) -> dict:
    """A spsbot record reduced to ``FIELDS`` in the reference's shapes."""
    return {"pmid": record["pmid"], **{k: record.get(k) for k in FIELDS},
            "abstract_sections": [(s["label"], s["text"]) for s in record.get("abstract_sections") or []]}


def differences(mine: dict, reference: dict) -> list[str]:
    """The fields (of ``FIELDS``) where spsbot's record differs from the library's reading.
    A year the library does not give (no PubDate year) is not compared: spsbot falls back to
    the article or Entrez date then."""
    mine = ours(mine)
    return [k for k in FIELDS if mine[k] != reference[k] and not (k == "pub_year" and reference[k] is None)]


def generation_samples() -> list[tuple[str, bytes]]:
    """One real record declared as each DTD generation would have served it: Biopython's 2008
    pubmed2 (two articles) for the generations up to pubmed_130501, its 2018 pubmed4 (structured
    abstract, AffiliationInfo) from pubmed_140101 on, when the record layout changed."""
    old = (FIXTURES / "biopython_entrez" / "pubmed2_2008.xml").read_bytes()
    new = (FIXTURES / "biopython_entrez" / "pubmed4.xml").read_bytes()
    return [(g, declared_as(old if g < "pubmed_140101" else new, g)) for g in generations()]


def corpora() -> dict[str, list[tuple[str, bytes]]]:
    """The corpora as (name, bytes) pairs: Biopython's Tests/Entrez PubMed files, other projects'
    efetch files (tests/fixtures/pubmed/, those not copied from Biopython), and one record per
    DTD generation (``generation_samples``)."""
    other = sorted(p for p in (FIXTURES / "pubmed").glob("efetch_*.xml") if not p.name.startswith("efetch_biopython_"))
    return {"biopython Tests/Entrez": [(p.name, p.read_bytes())
                                       for p in sorted((FIXTURES / "biopython_entrez").glob("*.xml"))],
            "other projects' efetch": [(p.name, p.read_bytes()) for p in other],
            "DTD generations": generation_samples()}
