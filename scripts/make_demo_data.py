"""Build the bundled PubMed demo data set (bot/demo_data/pubmed/) from the SPS evaluation records.

The texts are real (title, abstract, year, journal, DOI and publication types from
../shared/eval/dev.jsonl, records with a PMID); the E-utilities envelopes around them are built
here in the real efetch shape (PubmedArticleSet, DTD pubmed_250101). Entrez dates are invented,
spread deterministically over the two years up to 2026-11-20 so a weekly digest has recent items.

Usage: python scripts/make_demo_data.py [DEV_JSONL] [OUT_DIR]
"""

from __future__ import annotations

import json
import random
import re
import sys
from datetime import date, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

DEV = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/eval/dev.jsonl")
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).resolve().parents[1] / "bot/demo_data/pubmed")
LAST_DAY = date(2026, 11, 20)
N_SPS, N_NEAR, N_NEG = 64, 9, 12
RECENT = 10   # records given an Entrez date in the last week

# The evaluation set's publication-type words → PubMed's PublicationType names.
PUB_TYPES = {"case report": ["Case Reports"], "case series": ["Case Reports"], "review": ["Review"],
             "systematic review": ["Systematic Review", "Review"], "meta-analysis": ["Meta-Analysis"],
             "controlled trial": ["Controlled Clinical Trial"], "clinical trial": ["Clinical Trial"],
             "observational study": ["Observational Study"], "cohort/observational": ["Observational Study"],
             "post hoc analysis of RCT": ["Randomized Controlled Trial"]}
LABEL_RE = re.compile(r"(?:^|(?<=[.,;] ))([A-Z][A-Z/&, ]{2,40}): ")


def select(records: list[dict]) -> list[dict]:
    pmid_records = [r for r in records if r["id"].startswith("PMID:") and r["kind"] == "paper"]
    by_group = {g: sorted((r for r in pmid_records if r["group"] == g), key=lambda r: -len(r["text"]))
                for g in ("sps", "near_miss", "negative")}
    return by_group["sps"][:N_SPS] + by_group["near_miss"][:N_NEAR] + by_group["negative"][:N_NEG]


def sections(text: str) -> list[tuple[str | None, str]]:
    """Split a "LABEL: text, LABEL: text" abstract (as exported) into labelled parts."""
    marks = list(LABEL_RE.finditer(text))
    if len(marks) < 2 or marks[0].start() != 0:
        return [(None, text)]
    parts = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        parts.append((mark.group(1).strip(), text[mark.end():end].strip().rstrip(",").strip()))
    return parts


def xml_date(tag: str, day: date, attrs: str = "") -> str:
    return f"<{tag}{attrs}><Year>{day.year}</Year><Month>{day.month:02d}</Month><Day>{day.day:02d}</Day></{tag}>"


def article_xml(record: dict, entrez: date) -> str:
    pmid = record["id"].split(":", 1)[1]
    abstract = "".join(
        f'<AbstractText Label="{escape(label)}">{escape(text)}</AbstractText>' if label
        else f"<AbstractText>{escape(text)}</AbstractText>"
        for label, text in sections(record["text"]))
    pub_types = ["Journal Article"] + [t for p in record.get("pub_types") or [] for t in PUB_TYPES.get(p, [])]
    types = "".join(f'<PublicationType UI="">{escape(t)}</PublicationType>' for t in dict.fromkeys(pub_types))
    journal = escape(record.get("journal") or "Unknown journal")
    # The evaluation set sometimes keeps a DOI as a resolver URL; PubMed stores the bare DOI.
    doi = re.sub(r"^https?://(dx\.)?doi\.org/", "", record.get("doi") or "") or None
    ids = f'<ArticleId IdType="pubmed">{pmid}</ArticleId>' + (f'<ArticleId IdType="doi">{escape(doi)}</ArticleId>'
                                                             if doi else "")
    elocation = f'<ELocationID EIdType="doi" ValidYN="Y">{escape(doi)}</ELocationID>' if doi else ""
    history = (xml_date("PubMedPubDate", entrez, ' PubStatus="pubmed"')
               + xml_date("PubMedPubDate", entrez, ' PubStatus="entrez"'))
    return (
        f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{pmid}</PMID>'
        f'{xml_date("DateRevised", entrez)}<Article PubModel="Print"><Journal><JournalIssue CitedMedium="Internet">'
        f'<PubDate><Year>{record["year"]}</Year></PubDate></JournalIssue><Title>{journal}</Title></Journal>'
        f'<ArticleTitle>{escape(record["title"])}</ArticleTitle>{elocation}<Abstract>{abstract}</Abstract>'
        f'<Language>eng</Language><PublicationTypeList>{types}</PublicationTypeList></Article>'
        f'<MedlineJournalInfo><MedlineTA>{journal}</MedlineTA></MedlineJournalInfo></MedlineCitation>'
        f'<PubmedData><History>{history}</History>'
        f'<PublicationStatus>ppublish</PublicationStatus><ArticleIdList>{ids}</ArticleIdList></PubmedData>'
        f'</PubmedArticle>')


def entrez_dates(n: int) -> list[date]:
    rng = random.Random(2026)
    recent = [LAST_DAY - timedelta(days=rng.randrange(7)) for _ in range(RECENT)]
    older = [LAST_DAY - timedelta(days=rng.randrange(7, 730)) for _ in range(n - RECENT)]
    dates = recent + older
    rng.shuffle(dates)
    return dates


def main() -> None:
    records = select([json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()])
    dates = entrez_dates(len(records))
    articles = "\n".join(article_xml(r, d) for r, d in zip(records, dates))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "efetch_demo_articles.xml").write_text(
        '<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
        '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n'
        f"{articles}\n</PubmedArticleSet>\n", encoding="utf-8")
    groups = {g: sum(1 for r in records if r["group"] == g) for g in ("sps", "near_miss", "negative")}
    print(f"wrote {len(records)} articles to {OUT} ({groups})")


if __name__ == "__main__":
    main()
