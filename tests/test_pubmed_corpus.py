"""spsbot reads other projects' PubMed test corpora as the library itself reads them (issue 21).

Every record of Biopython's Tests/Entrez PubMed files (tests/fixtures/biopython_entrez/, README
there), of the other projects' efetch files (tests/fixtures/pubmed/) and of one real record
declared as each DTD generation NLM has served (pubmed_080101 … pubmed_250101) is read through
both of spsbot's ways in, ``spsbot score FILE`` (``read_records``) and the fetch path
(``parse_batch``), and compared with ``Bio.Entrez.read`` on the same bytes
(tests/pubmed_reference.py): title, abstract, authors, journal, year, DOI, publication types and
MeSH must be the library's values, markup flattened to its text.
"""

from __future__ import annotations

import pytest
from pubmed_reference import corpora, differences, generations, library_records, ours

from bot.ranking.records import read_records
from bot.sources.pubmed import parse_batch, parse_efetch

CASES = [(corpus, name, body) for corpus, files in corpora().items() for name, body in files]


@pytest.mark.parametrize("corpus, name, body", CASES, ids=[f"{c.split()[0]}:{n}" for c, n, _ in CASES])
def test_every_record_reads_as_the_library_reads_it(corpus, name, body):
    reference = library_records(body)
    batch = parse_batch(body)
    assert batch.error is None and not batch.quarantined
    assert [r["pmid"] for r in batch.records] == [r["pmid"] for r in reference]   # none dropped, in order
    for mine, theirs in zip(batch.records, reference):
        assert differences(mine, theirs) == [], (ours(mine), theirs)
        assert mine["title"] and not mine["title"].startswith("[PMID")
    # `spsbot score FILE` reads the same records, with the same text
    scored = read_records(body, name)
    assert [r["id"] for r in scored] == [f"pmid:{r['pmid']}" for r in reference]
    assert [(r["title"], r["pub_types"], r["mesh"]) for r in scored] == [
        (r["title"], r["pub_types"], r["mesh"]) for r in reference]


def test_the_corpus_is_what_it_says():
    sizes = {corpus: (len(files), sum(len(library_records(b)) for _, b in files))
             for corpus, files in corpora().items()}
    assert sizes == {"biopython Tests/Entrez": (8, 12), "other projects' efetch": (18, 26), "DTD generations": (16, 24)}
    assert generations()[0] == "pubmed_080101" and generations()[-1] == "pubmed_250101"
    # the comparison is not vacuous: the fields compared hold text in most records (only the
    # erratum notice 38962805 has no author)
    records = [r for files in corpora().values() for _, b in files for r in library_records(b)]
    assert sum(bool(r["abstract_sections"]) for r in records) >= 50 and sum(bool(r["mesh"]) for r in records) >= 30
    assert sum(bool(r["doi"]) for r in records) >= 40 and sum(bool(r["authors"]) for r in records) == len(records) - 1


def test_a_2008_plain_text_abstract_is_one_section_not_one_per_character(fixtures):
    body = (fixtures / "biopython_entrez" / "pubmed2_2008.xml").read_bytes()
    assert b'"http://www.ncbi.nlm.nih.gov/entrez/query/DTD/pubmed_080101.dtd"' in body
    first = parse_efetch(body)[0]
    assert len(first["abstract_sections"]) == 1 and first["abstract_sections"][0]["label"] is None
    assert first["abstract"].startswith("This study subdivides the cryopreservation procedure for Diplodus")
    assert first["abstract"].endswith("to better understand the process of sperm damage.")


@pytest.mark.parametrize("generation", generations())
def test_every_dtd_generation_is_read_by_score_and_fetch(generation):
    body = dict(corpora()["DTD generations"])[generation]
    records = parse_batch(body).records
    assert [r["pmid"] for r in records] == [r["pmid"] for r in library_records(body)] != []
    assert all(r["abstract"] and len(r["abstract_sections"]) <= 4 for r in records)
    assert [r["id"] for r in read_records(body, "x.xml")] == [f"pmid:{r['pmid']}" for r in records]


def test_a_book_records_journal_is_the_books_title(fixtures):
    chapter = parse_efetch((fixtures / "pubmed" / "efetch_hawc_efetch_20301382_PubmedBookArticle_chapter_"
                                                  "structured_abstract_markup.xml").read_bytes())[0]
    book = parse_efetch((fixtures / "pubmed" / "efetch_hawc_efetch_26468569_PubmedBookArticle_book_"
                                               "collectivename_authors.xml").read_bytes())[0]
    assert chapter["journal"] == "GeneReviews®" and chapter["extra"]["publisher"] != "GeneReviews®"
    assert book["journal"] == book["extra"]["book_title"] != book["extra"]["publisher"]
