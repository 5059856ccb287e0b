"""``spsbot export``: CSV, JSON Lines and RIS, each parsed back; filters shared with search."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.export import export_records, ris_type, write_export
from bot.search.hybrid import Filters
from bot.store import save_items
from searchkit import seed_store


def read_ris(text: str) -> list[dict[str, list[str]]]:
    """A small RIS reader: records between TY and ER, each tag -> list of values."""
    records, current = [], None
    for line in text.splitlines():
        if not line.strip():
            continue
        assert len(line) >= 6 and line[2:6] == "  - ", f"not a RIS line: {line!r}"
        tag, value = line[:2], line[6:]
        if tag == "TY":
            assert current is None, "TY inside a record"
            current = {"TY": [value]}
        elif tag == "ER":
            records.append(current)
            current = None
        else:
            current.setdefault(tag, []).append(value)
    assert current is None, "last record not closed by ER"
    return records


@pytest.fixture
def store(db):
    mapping = seed_store(db)
    save_items(db, [{"kind": "paper", "source": "pubmed", "pmid": "38762411", "doi": "10.1016/j.example.2024.01",
                     "title": "Giant intrathoracic schwannoma:\nA case report.", "abstract": "Line one.\nLine two.",
                     "authors": ["Doe J", "Roe R"], "journal": "Respirology Case Reports", "pub_date": "2024-09",
                     "pub_year": 2024, "pub_types": ["Case Reports", "Letter"], "mesh": ["Schwannoma"]}])
    return db, mapping


def test_csv_round_trip(store):
    db, _ = store
    out = io.StringIO()
    count = write_export(export_records(db), out, "csv")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert count == len(rows) == db.execute("SELECT count(*) FROM items").fetchone()[0]
    by_id = {r["id"]: r for r in rows}
    paper = by_id["pmid:38762411"]
    assert paper["authors"] == "Doe J; Roe R" and paper["year"] == "2024"
    assert paper["title"] == "Giant intrathoracic schwannoma:\nA case report."  # csv quoting keeps newlines
    relevances = [float(r["relevance"]) for r in rows if r["relevance"]]
    assert relevances == sorted(relevances, reverse=True)  # most relevant first
    trial = next(r for r in rows if r["kind"] == "trial" and r["status"])
    assert trial["url"].startswith("https://clinicaltrials.gov/study/NCT")


def test_jsonl_round_trip_with_filters(store):
    db, _ = store
    out = io.StringIO()
    write_export(export_records(db, Filters(themes=["symptomatic"], kind="paper")), out, "jsonl")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records
    assert all(r["kind"] == "paper" and "symptomatic" in r["labels"] for r in records)
    assert all(isinstance(r["themes"], dict) and isinstance(r["pub_types"], list) for r in records)
    expected = db.execute("SELECT count(*) FROM items JOIN scores ON scores.item_id = items.id "
                          "WHERE kind = 'paper' AND scores.labels LIKE '%\"symptomatic\"%'").fetchone()[0]
    assert len(records) == expected


def test_ris_round_trip(store):
    db, _ = store
    out = io.StringIO()
    count = write_export(export_records(db), out, "ris")
    records = read_ris(out.getvalue())
    assert len(records) == count
    paper = next(r for r in records if r["ID"] == ["pmid:38762411"])
    assert paper["TY"] == ["JOUR"]
    assert paper["AU"] == ["Doe J", "Roe R"]
    assert paper["TI"] == ["Giant intrathoracic schwannoma: A case report."]  # one line
    assert paper["AB"] == ["Line one. Line two."]
    assert paper["JO"] == ["Respirology Case Reports"] and paper["PY"] == ["2024"]
    assert paper["DO"] == ["10.1016/j.example.2024.01"] and paper["AN"] == ["PMID:38762411"]
    assert paper["UR"] == ["https://pubmed.ncbi.nlm.nih.gov/38762411/"]
    assert "Schwannoma" in paper["KW"]
    trials = [r for r in records if r["ID"][0].startswith("nct:")]
    assert trials and {t["TY"][0] for t in trials} == {"ELEC"}
    labelled = [r for r in records if "KW" in r and "immunomodulation" in r["KW"]]
    assert labelled and all("N1" in r and r["N1"][0].startswith("spsbot relevance") for r in labelled)


def test_ris_types():
    assert ris_type({"kind": "trial"}) == "ELEC"
    assert ris_type({"kind": "paper", "pub_types": ["Preprint"]}) == "UNPB"
    assert ris_type({"kind": "paper", "pub_types": ["conference abstract"]}) == "ABST"
    assert ris_type({"kind": "paper", "pub_types": ["Journal Article"]}) == "JOUR"


def test_cli_export_to_file_by_extension_and_stdout(env_isolated):
    from bot.store import open_db
    db = open_db(env_isolated / "cli.db")
    seed_store(db)
    db.close()
    runner = CliRunner()
    target = env_isolated / "relevant.ris"
    result = runner.invoke(cli, ["export", "--relevant", "--since", "2020", "-o", str(target)])
    assert result.exit_code == 0, result.output
    records = read_ris(target.read_text(encoding="utf-8"))
    assert records and f"wrote {len(records)} items to {target} (ris)" in result.output
    assert all(int(r["PY"][0]) >= 2020 for r in records)

    jsonl = runner.invoke(cli, ["export", "--kind", "trial", "--format", "jsonl", "-n", "3"])
    lines = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(lines) == 3 and {r["kind"] for r in lines} == {"trial"}

    none = runner.invoke(cli, ["export", "--pub-type", "no such type"])
    assert none.exit_code == 0 and "No items match" in none.stderr
    assert next(csv.reader(io.StringIO(none.stdout)))[0] == "id"  # header only
