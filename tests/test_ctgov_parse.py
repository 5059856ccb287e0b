"""Parsing real ClinicalTrials.gov v2 study records into trial records."""

import json
import re
from html.parser import HTMLParser

import pytest

from bot.ranking.records import read_records, record_for_ranking
from bot.ranking.text import record_sentences
from bot.sources.clinicaltrials import parse_study, search_params
from bot.sources.markdown import excerpt, to_html, to_text
from bot.store.trials import TRACKED_FIELDS, save_trials, tracked_snapshot
from ctgov_helpers import FIXTURES, load, study


def test_completed_trial_with_results_section():
    record = parse_study(study("NCT02210780"))
    extra = record["extra"]
    assert record["kind"] == "trial" and record["source"] == "ctgov"
    assert record["nct_id"] == "NCT02210780"
    assert record["url"] == "https://clinicaltrials.gov/study/NCT02210780"
    assert record["title"] == "Study of Dupilumab and Immune Responses in Adults With Atopic Dermatitis (AD)"
    assert extra["official_title"].startswith("A Randomized, Double-Blind, Placebo-Controlled")
    assert extra["overall_status"] == "COMPLETED"
    assert extra["phases"] == ["PHASE2"] and record["pub_types"] == ["Clinical Trial, Phase 2"]
    assert extra["enrollment"] == 194 and extra["enrollment_type"] == "ACTUAL"
    assert extra["has_results"] is True
    assert extra["results_first_posted"] == {"date": "2020-05-07", "type": "ACTUAL"}
    assert extra["start_date"] == {"date": "2014-08-05", "type": "ACTUAL"}
    assert record["pub_date"] == "2014-08-07" and record["pub_year"] == 2014
    assert record["version_date"] == "2020-05-07"
    assert {"type": "DRUG", "name": "Dupilumab"} in extra["interventions"]
    assert len(extra["arms"]) == 2
    assert record["authors"] == ["Regeneron Pharmaceuticals"]
    tracked = tracked_snapshot(extra)
    assert set(tracked) == set(TRACKED_FIELDS)
    assert tracked["results_posted"] == "2020-05-07 (actual)"


def test_withdrawn_trial_with_why_stopped_month_only_dates_and_reference():
    record = parse_study(study("NCT00973089"))
    extra = record["extra"]
    assert extra["overall_status"] == "WITHDRAWN"
    assert extra["why_stopped"].startswith("recruiting or enrolling participants has halted")
    # month-only forms are kept as given, with the type where the registry gives one
    assert extra["start_date"] == {"date": "2010-05", "type": None}
    assert extra["completion_date"] == {"date": "2015-03", "type": "ACTUAL"}
    assert tracked_snapshot(record["extra"])["start_date"] == "2010-05"
    assert extra["has_results"] is False
    assert extra["references"] == [{"pmid": "18519994", "type": "BACKGROUND"}]
    assert extra["locations_count"] == 1 and extra["countries"] == ["Israel"]
    assert record["pub_types"] == ["Clinical Trial"]  # phase "NA"


def test_unknown_status_keeps_last_known_status_and_observational_type():
    record = parse_study(study("NCT03475563"))
    assert record["extra"]["overall_status"] == "UNKNOWN"
    assert record["extra"]["last_known_status"] == "RECRUITING"
    assert record["extra"]["phases"] == []
    assert record["pub_types"] == ["Observational Study"]
    assert record["extra"]["acronym"] == "BIOSS"


def test_non_ascii_and_estimated_dates():
    record = parse_study(study("NCT06171568"))
    assert record["title"] == "Lariboisière Cognitive Assessment: Evaluation of the 1-year Outcomes"
    assert record["authors"] == ["Assistance Publique - Hôpitaux de Paris"]
    assert record["extra"]["start_date"] == {"date": "2024-02-01", "type": "ESTIMATED"}
    assert tracked_snapshot(record["extra"])["start_date"] == "2024-02-01 (estimated)"


def test_results_with_document_section_and_no_phases_key():
    record = parse_study(study("NCT05594173"))
    assert record["extra"]["has_results"] is True
    assert record["extra"]["phases"] == []


def test_fields_filtered_search_page_parses_without_optional_modules():
    records = [parse_study(s) for s in load("studies_phelan_page1.json")["studies"]]
    assert [r["nct_id"] for r in records][0] == "NCT02710084"
    first = records[0]
    assert first["extra"]["has_results"] is False and first["extra"]["locations_count"] == 0
    assert first["extra"]["start_date"] == {"date": "2016-04-29", "type": None}
    assert first["extra"]["interventions"] == [{"type": "", "name": "Oxytocin"}, {"type": "", "name": "Saline"}]


def test_study_without_nct_id_is_refused():
    with pytest.raises(ValueError):
        parse_study({"protocolSection": {"identificationModule": {"briefTitle": "x"}}})


def test_incremental_search_uses_last_update_post_date_range():
    params = search_params(condition="Stiff-Person Syndrome", page_size=1000, since="2026-11-01")
    assert params["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2026-11-01,MAX]"
    assert params["query.cond"] == "Stiff-Person Syndrome" and params["pageSize"] == 1000
    with pytest.raises(ValueError):
        search_params(condition="x", page_size=1001)


# --- markdown (v2 "markup" fields) --------------------------------------------------------------

# Fields of type "markup" in the v2 data model (https://clinicaltrials.gov/data-api/about-api/
# study-data-structure) that the fixtures hold: CommonMark, with `\[`, `\<`, `\&` escapes and lists.
MARKUP_FIELDS = [("descriptionModule", "briefSummary"), ("descriptionModule", "detailedDescription"),
                 ("eligibilityModule", "eligibilityCriteria"), ("statusModule", "whyStopped")]
FIXTURE_STUDIES = [s for name in sorted(p.name for p in FIXTURES.glob("*.json"))
                   for s in (load(name).get("studies") or [load(name)])]
MARKUP_VALUES = [pytest.param(s["protocolSection"][module][field],
                              id=f"{s['protocolSection']['identificationModule']['nctId']}-{field}")
                 for s in FIXTURE_STUDIES for module, field in MARKUP_FIELDS
                 if s["protocolSection"].get(module, {}).get(field)]
_ESCAPE = re.compile(r"\\[!-/:-@\[-`{-~]")  # a backslash before ASCII punctuation: a markdown escape


def test_the_fixtures_hold_markdown_escapes_and_lists():
    """(So the checks below have something to find.)"""
    values = [p.values[0] for p in MARKUP_VALUES]
    assert sum(bool(_ESCAPE.search(v)) for v in values) >= 2
    assert sum(bool(re.search(r"^(\*|\d+\.) ", v, re.M)) for v in values) >= 5


def test_brief_summary_in_markdown_is_stored_as_the_plain_text_it_says():
    record = parse_study(study("NCT02576665"))
    source = study("NCT02576665")["protocolSection"]["descriptionModule"]["briefSummary"]
    assert "glioma \\[rHGG\\]" in source
    assert "(including recurrent high grade glioma [rHGG]) or lymphoma." in record["abstract"]
    assert "\\" not in record["abstract"]
    # its three paragraphs stay paragraphs, and the markdown is kept for pages that show it formatted
    assert [p[:20] for p in record["abstract"].split("\n\n")] == [
        "The purpose of this ", "Toca 511 will be adm", "Patients not undergo"]
    assert record["extra"]["summary_markdown"] == source
    assert to_html(record["extra"]["summary_markdown"]).count("<p>") == 3


def test_a_numbered_eligibility_list_reads_as_lines_and_renders_as_a_list():
    criteria = study("NCT06382129")["protocolSection"]["eligibilityModule"]["eligibilityCriteria"]
    lines = to_text(criteria).splitlines()
    assert lines[:4] == ["Inclusion Criteria:", "",
                         "1. Voluntarily sign the informed consent and follow the requirements of the protocol;",
                         "2. Age ≥18 years old;"]
    assert "11. Urine protein ≤2+ or < 1000mg/24h;" in lines
    rendered = to_html(criteria)
    assert rendered.startswith("<p>Inclusion Criteria:</p>\n<ol>\n<li>Voluntarily sign")
    assert "<li>Urine protein ≤2+ or &lt; 1000mg/24h;</li>" in rendered


def test_bullets_read_as_dash_lines():
    criteria = study("NCT05594173")["protocolSection"]["eligibilityModule"]["eligibilityCriteria"]
    assert to_text(criteria).splitlines()[:3] == ["Inclusion Criteria:", "", "- Healthy adults under age 60"]
    assert "<ul>\n<li>Healthy adults under age 60</li>\n</ul>" in to_html(criteria)


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("markdown", MARKUP_VALUES)
def test_every_markup_field_reads_the_same_as_its_html_without_escapes(markdown):
    """The plain text and the HTML (read back by a real HTML parser) say the same words; no
    markdown escape is left in the text."""
    text = to_text(markdown)
    assert not _ESCAPE.search(text), _ESCAPE.search(text)
    reader = _Text()
    reader.feed(to_html(markdown))
    without_markers = re.sub(r"^ *(?:-|\d+\.) ", "", text, flags=re.M)
    assert _words(without_markers) == _words("".join(reader.parts))


def test_html_from_a_record_never_passes_markup_or_unsafe_links_through():
    hostile = ("Age <5 years & p<0.05 <script>alert(1)</script> <img src=x onerror=alert(1)> "
               "[click](javascript:alert(1)) [ok](https://example.org/a?b=1&c=2) ![pixel](https://t.example/p.gif)\n\n"
               "* **bold** and *em*")
    rendered = to_html(hostile)
    assert "<script" not in rendered and "<img" not in rendered and "href=\"javascript" not in rendered
    assert "[click](javascript:alert(1))" in rendered  # not a link: the text it is
    assert "Age &lt;5 years &amp; p&lt;0.05 &lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert '<a href="https://example.org/a?b=1&amp;c=2">ok</a>' in rendered
    assert "pixel" in rendered  # an image is its alt text: a mail never loads a tracker
    assert "<li><strong>bold</strong> and <em>em</em></li>" in rendered
    assert to_text(hostile).splitlines()[-1] == "- bold and em"


def test_an_excerpt_is_whole_blocks_and_says_when_it_left_some_out():
    source = study("NCT02576665")["protocolSection"]["descriptionModule"]["briefSummary"]
    first, more = excerpt(source, 300)
    assert more and first == source.split("\n\n")[0]  # the first paragraph is longer than 300: kept whole
    two, more = excerpt(source, 1000)
    assert more and two == "\n\n".join(source.split("\n\n")[:2])
    assert excerpt(source, 10_000) == (source, False)


def test_why_stopped_in_markdown_is_one_plain_line():
    raw = study("NCT00973089")
    raw["protocolSection"]["statusModule"]["whyStopped"] = "Sponsor decision \\[funding\\]:\n* no drug supply"
    assert parse_study(raw)["extra"]["why_stopped"] == "Sponsor decision [funding]: - no drug supply"


def test_a_trial_stored_with_its_markdown_flattened_is_corrected_by_the_next_fetch_without_a_change(db):
    """Stores from before markdown was read hold `glioma \\[rHGG\\]` on one line; the next fetch of the
    study (an update, or `fetch --full`) stores the plain text and the markdown, and records no change."""
    raw = study("NCT02576665")
    record = parse_study(raw)
    source = raw["protocolSection"]["descriptionModule"]["briefSummary"]
    before = {**record, "abstract": " ".join(source.split()),
              "extra": {k: v for k, v in record["extra"].items() if k != "summary_markdown"}}
    save_trials(db, [before])
    assert save_trials(db, [parse_study(study("NCT02576665"))])["updated"] == 1
    row = db["items"].get("nct:NCT02576665")
    assert row["abstract"] == record["abstract"] and json.loads(row["extra"])["summary_markdown"] == source
    assert db["trial_changes"].count == 0


def test_spsbot_score_reads_a_v2_file_as_plain_text():
    """What the ranker reads of a study file (`spsbot score study.json`) is the text, not its markdown."""
    body = (FIXTURES / "study_NCT02576665.json").read_bytes()
    [record] = read_records(body, "study.json")
    assert record["id"] == "nct:NCT02576665" and "\\" not in record["text"]
    assert "recurrent high grade glioma [rHGG]) or lymphoma." in record["text"]


def test_the_ranker_reads_each_line_of_a_trial_as_its_own_sentence():
    """A list item or the conditions line has no full stop: a quote never runs one line into the next."""
    raw = study("NCT05594173")
    raw["protocolSection"]["descriptionModule"]["briefSummary"] = (
        "The goals of this study are:\n\n* define the natural history of SPS in patients\n"
        "* measure GAD65 \\< 2000 IU/mL titres")
    record = record_for_ranking({"id": "nct:NCT05594173", **parse_study(raw)})
    conditions = "; ".join(raw["protocolSection"]["conditionsModule"]["conditions"])
    assert record_sentences(record, budget=0)[1:] == [
        "The goals of this study are:", "define the natural history of SPS in patients",
        "measure GAD65 < 2000 IU/mL titres", f"Conditions: {conditions}."]
