"""The record reader behind ``spsbot score`` and ``spsbot label --file``, called from Python
(``bot.ranking.records``; the CLI's exit codes and lines are in test_ranking_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.ranking.records import RecordError, read_labels, read_records, record_for_ranking
from bot.sources.clinicaltrials import parse_study
from bot.store import save_items
from bot.store.ranking import items_by_id

FIXTURES = Path(__file__).parent / "fixtures" / "ranking"


def test_json_lines_and_a_json_array_are_records_as_given():
    records = [{"id": "a", "title": "Stiff person syndrome"}, {"id": "b", "text": "Rigidity.", "mesh": ["X"]}]
    body = ("\n".join(json.dumps(r) for r in records) + "\n\n").encode()
    assert read_records(body) == records
    assert read_records(json.dumps(records).encode()) == records


@pytest.mark.parametrize("body, message", [
    (b'{"id": "a", "title": "ok"}\n{not json\n', "papers.jsonl: line 2: not valid JSON"),
    (b'{"id": "a", "title": "ok"}\n{"id": "b", "pub_types": "x", "title": "t"}\n',
     "papers.jsonl: line 2: 'pub_types' must be a list"),
    (b'{"id": "a", "title": "ok"}\n{"id": "b"}\n',
     "papers.jsonl: line 2: valid JSON, but not a record: a record needs a non-empty 'title' or 'text'"),
    (b'{"id": "a", "title": "ok"}\n7\n', "papers.jsonl: line 2: valid JSON, but not a record: expected a JSON object"),
    (b'[{"id": "a", "title": "ok"}, 3]',
     "papers.jsonl: record 2: valid JSON, but not a record: expected a JSON object"),
    (b"<PubmedArticleSet><PubmedArticle>", "papers.jsonl: not a readable PubMed XML file"),
    (b'{"studies": [{"protocolSection": {}}]}',
     "papers.jsonl: study 1: valid JSON, but not a ClinicalTrials.gov v2 study (ValueError: "),
    # issue 21: a JSON file of another shape is not called "not valid JSON"...
    (b'{\n  "id": "a",\n  "summary": "no title or text"\n}\n',
     "papers.jsonl: valid JSON, but neither a record (a record needs a non-empty 'title' or 'text') nor "
     "ClinicalTrials.gov v2 JSON (no 'studies' or 'protocolSection')"),
    (b'{"id": "a"}\n', "papers.jsonl: valid JSON, but neither a record"),
    (b'{"studies": {"NCT1": {}}}', "papers.jsonl: valid JSON, but not a ClinicalTrials.gov v2 /studies page"),
    (b'{"studies": [{"hasResults": false}]}', "papers.jsonl: study 1: valid JSON, but not a ClinicalTrials.gov v2"),
    (b'"a title"', "papers.jsonl: valid JSON, but a string, not records (JSON Lines, or a list), a "
                   "ClinicalTrials.gov v2 study or /studies page"),
    (b"null\n", "papers.jsonl: valid JSON, but null, not records"),
    # ... and a file that is not JSON says where it breaks, whether it is one document or lines
    (b'{\n  "id": "a",\n  "title": "ok",\n  oops\n}\n', "papers.jsonl: line 4: not valid JSON (Expecting property"),
    (b"id,title\na,ok\n", "papers.jsonl: line 1: not valid JSON (Expecting value)"),
])
def test_an_unreadable_file_is_one_error_naming_where(body, message):
    with pytest.raises(RecordError) as caught:
        read_records(body, "papers.jsonl")
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_pubmed_xml_becomes_paper_records():
    records = read_records((FIXTURES / "efetch_two_articles_mesh.xml").read_bytes())
    assert [r["id"] for r in records] == ["pmid:11748933", "pmid:11700088"]
    assert all(r["kind"] == "paper" and r["title"] and r["text"] for r in records)
    assert "Cryopreservation" in records[0]["mesh"] and records[0]["pub_types"][0] == "Journal Article"


def test_a_trial_record_names_its_conditions_whether_parsed_or_stored(db):
    study = json.loads((FIXTURES / "study_NCT00973089.json").read_text())
    (record,) = read_records(json.dumps(study).encode())
    assert record["id"] == "nct:NCT00973089" and record["kind"] == "trial"
    assert record["text"].endswith("Conditions: Caries, Dental.") and "Primary tooth" in record["keywords"]
    # The same trial stored (its lists are JSON text in the row) gives the same record.
    parsed = parse_study(study)
    save_items(db, [parsed], source="ctgov")
    (row,) = items_by_id(db, [record["id"]]).values()
    assert isinstance(row["keywords"], str) and record_for_ranking(row) == record


def test_a_studies_page_is_one_record_per_study():
    records = read_records((FIXTURES / "studies_page_one_study.json").read_bytes())
    assert [r["id"] for r in records] == ["nct:NCT06388018"]


def test_label_files_in_csv_and_json_lines():
    assert read_labels("item_id,label,theme\npmid:1,relevant,\npmid:2, irrelevant ,registries\n", "l.csv") == [
        (2, "pmid:1", "relevant", None), (3, "pmid:2", "irrelevant", "registries")]
    assert read_labels('{"item_id": "pmid:1", "label": "relevant"}\n', "l.jsonl") == [
        (1, "pmid:1", "relevant", None)]
    with pytest.raises(RecordError, match=r"l.csv: a CSV needs a header"):
        read_labels("id,verdict\n", "l.csv")
    with pytest.raises(RecordError, match=r"l.jsonl: line 2: needs 'item_id' and 'label'"):
        read_labels('{"item_id": "a", "label": "relevant"}\n{"item_id": "b"}\n', "l.jsonl")
