"""`spsbot score`, `spsbot rank` and `spsbot label` through the CLI, with the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.store import open_db, save_items

FIXTURES = Path(__file__).parent / "fixtures" / "ranking"
THEMES = {"immunomodulation", "symptomatic", "registries", "multidisciplinary", "biomarkers", "diagnosis"}


@pytest.fixture(autouse=True)
def isolated(env_isolated):
    return env_isolated


def run(args, stdin_text=None):
    return CliRunner().invoke(cli, args, input=stdin_text, catch_exceptions=False)


def lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


RECORDS = [
    {"id": "a", "title": "Stiff person syndrome treated with intravenous immunoglobulin",
     "text": "Two patients with anti-GAD65 stiff person syndrome improved after monthly IVIG.",
     "pub_types": ["Case Reports"]},
    {"id": "b", "title": "Tetanus in an unvaccinated farmer",
     "text": "Generalised rigidity and trismus after a wound."},
    {"id": "c", "title": "Stiff-limb syndrome", "text": "", "kind": "paper"},
]


def test_score_jsonl_contract_in_order_and_no_database(isolated):
    body = "\n".join(json.dumps(r) for r in RECORDS) + "\n\n"
    result = run(["score", "-"], stdin_text=body)
    assert result.exit_code == 0, result.output
    out = lines(result.stdout)
    assert [o["id"] for o in out] == ["a", "b", "c"]
    for o in out:
        assert {"id", "relevance", "themes", "labels", "why"} <= set(o)
        assert 0 <= o["relevance"] <= 1 and set(o["themes"]) == THEMES
        assert set(o["labels"]) <= THEMES and isinstance(o["why"], str) and o["why"]
    assert out[0]["relevant"] and "immunomodulation" in out[0]["labels"]
    assert not out[1]["relevant"]
    assert not (isolated / "cli.db").exists()  # score never touches the store


def test_score_bad_line_names_it_and_writes_nothing(isolated, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n{not json\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["score", str(path)])
    assert result.exit_code == 1 and result.stdout == ""
    assert "line 2" in result.output and "bad.jsonl" in result.output
    path.write_text(json.dumps(RECORDS[0]) + "\n" + json.dumps({"id": "x", "pub_types": "x"}) + "\n")
    result = CliRunner().invoke(cli, ["score", str(path)])
    assert result.exit_code == 1 and "line 2" in result.output
    # valid JSON of another shape is not "not valid JSON" (issue 21)
    path.write_text(json.dumps({"results": [RECORDS[0]]}, indent=2))
    result = CliRunner().invoke(cli, ["score", str(path)])
    assert result.exit_code == 1 and result.stdout == "" and len(result.output.strip().splitlines()) == 1
    assert "bad.jsonl: valid JSON, but neither a record" in result.output and "not valid JSON" not in result.output


def test_score_pubmed_xml(isolated):
    result = run(["score", str(FIXTURES / "efetch_two_articles_mesh.xml")])
    assert result.exit_code == 0, result.output
    out = lines(result.stdout)
    assert [o["id"] for o in out] == ["pmid:11748933", "pmid:11700088"]
    assert all(not o["relevant"] and o["relevance"] < 0.5 for o in out)  # neither is about SPS


@pytest.mark.parametrize("name, nct", [("studies_page_one_study.json", "nct:NCT06388018"),
                                       ("study_NCT00973089.json", "nct:NCT00973089")])
def test_score_ctgov_json(isolated, name, nct):
    result = run(["score", str(FIXTURES / name)])
    assert result.exit_code == 0, result.output
    out = lines(result.stdout)
    assert [o["id"] for o in out] == [nct] and set(out[0]["themes"]) == THEMES


def test_label_then_rank(isolated, tmp_path):
    db = open_db(isolated / "cli.db")
    save_items(db, [{"kind": "paper", "pmid": "1", "title": RECORDS[0]["title"], "abstract": RECORDS[0]["text"]}],
               source="pubmed")
    db.close()
    first = run(["rank"])
    assert first.exit_code == 0 and "scored 1 items (1 relevant)" in first.output
    again = run(["rank"])
    assert "scored 0 items" in again.output and "0 texts embedded" in again.output

    assert run(["label", "pmid:1", "relevant", "--theme", "immunomodulation"]).exit_code == 0
    bad = CliRunner().invoke(cli, ["label", "pmid:404", "relevant"])
    assert bad.exit_code == 1 and "no item 'pmid:404'" in bad.output
    bad = CliRunner().invoke(cli, ["label", "pmid:1", "relevant", "--theme", "astrology"])
    assert bad.exit_code == 1 and "unknown theme" in bad.output
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("item_id,label,theme\npmid:1,relevant,\npmid:1,irrelevant,registries\n")
    assert run(["label", "--file", str(csv_file)]).exit_code == 0
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text('{"item_id": "pmid:1", "label": "relevant"}\n{"item_id": "pmid:1"}\n')
    bad = CliRunner().invoke(cli, ["label", "--file", str(jsonl)])
    assert bad.exit_code == 1 and "line 2" in bad.output

    db = open_db(isolated / "cli.db")
    rows = sorted((r["label"], r["theme"] or "") for r in db["feedback"].rows)
    assert rows == [("irrelevant", "registries"), ("relevant", ""), ("relevant", "immunomodulation")]
    db.close()
    rescored = run(["rank"])
    assert "scored 1 items" in rescored.output and "0 texts embedded" in rescored.output
