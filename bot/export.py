"""``spsbot export``: stored items with their scores and labels as CSV, JSON Lines or RIS.

Exported text is hostile-data safe the way the digest is: every line of every string goes through
the digest's ``clean_text`` (no control, zero-width or bidi-override characters; line breaks are
kept), and a CSV cell that a spreadsheet would run as a formula (starting ``=``, ``+``, ``-``,
``@``) is prefixed with ``'`` (OWASP's "CSV injection" advice), so opening an export never
executes anything.

RIS (Research Information Systems) is what reference managers (Zotero, EndNote, Mendeley) import:
one ``TY  - `` line opening each record, ``ER  - `` closing it, one tag per line. Papers are
``JOUR``; a trial registration is a web/database record, ``ELEC`` (RIS has no trial type; EndNote
and Zotero both import ELEC as a web page, which is what a registry entry is).
"""

from __future__ import annotations

import csv
import json
from typing import IO, Iterable

import sqlite_utils

from bot.digest.entries import clean_lines, clean_text
from bot.search.hybrid import item_url
from bot.store import loads
from bot.store.search import Filters, export_rows

__all__ = ["FORMATS", "export_records", "write_export", "ris_type", "csv_cell", "clean_record"]

FORMATS = ("csv", "jsonl", "ris")
CSV_COLUMNS = ("id", "kind", "title", "year", "date", "journal", "authors", "doi", "pmid", "nct_id",
               "pub_types", "status", "relevance", "relevant", "labels", "why", "url", "abstract")


# What a spreadsheet reads as the start of a formula (and their full-width forms).
_FORMULA_START = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _clean(value):
    """Strings cleaned like the digest's (bot.digest.entries.clean_text), also inside lists/dicts."""
    if isinstance(value, str):
        return clean_lines(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k): _clean(v) for k, v in value.items()}
    return value


def clean_record(record: dict) -> dict:
    return {key: _clean(value) for key, value in record.items()}


def csv_cell(value):
    """A value for a CSV cell: lists joined with '; ', text cleaned, formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    if not isinstance(value, str):
        return value
    text = clean_lines(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def export_records(db: sqlite_utils.Database, filters: Filters | None = None,
                   limit: int | None = None) -> Iterable[dict]:
    """Items (most relevant first) as plain dicts with JSON columns decoded and text cleaned."""
    for row in export_rows(db, filters or Filters(), limit):
        extra = loads(row.get("extra"), {})
        date = row.get("pub_date") or row.get("entrez_date")
        year = row.get("pub_year") or (int(date[:4]) if date and date[:4].isdigit() else None)
        yield clean_record({
            "id": row["id"], "kind": row["kind"], "title": row["title"], "abstract": row.get("abstract"),
            "year": year, "date": date, "journal": row.get("journal"),
            "authors": loads(row.get("authors"), []), "doi": row.get("doi"), "pmid": row.get("pmid"),
            "nct_id": row.get("nct_id"), "pub_types": loads(row.get("pub_types"), []),
            "mesh": loads(row.get("mesh"), []), "keywords": loads(row.get("keywords"), []),
            "status": extra.get("overall_status") if row["kind"] == "trial" else None,
            "relevance": row.get("relevance"),
            "relevant": bool(row["relevant"]) if row.get("relevant") is not None else None,
            "themes": loads(row.get("themes"), {}), "labels": loads(row.get("labels"), []),
            "why": row.get("why"), "url": item_url(row), "first_seen": row.get("first_seen"),
        })


def write_csv(records: Iterable[dict], out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for record in records:
        writer.writerow({k: csv_cell(record.get(k)) for k in CSV_COLUMNS})
        count += 1
    return count


def write_jsonl(records: Iterable[dict], out: IO[str]) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def ris_type(record: dict) -> str:
    """RIS reference type: JOUR for papers, ELEC for trial registrations, a few special cases."""
    if record["kind"] == "trial":
        return "ELEC"
    types = " ".join(record.get("pub_types") or []).lower()
    if "preprint" in types:
        return "UNPB"
    if "conference" in types or "congress" in types:
        return "ABST"
    if "book" in types:
        return "CHAP"
    return "JOUR"


def _ris_line(tag: str, value) -> str:
    # RIS is line-based: a newline inside a value would start a bogus tag.
    return f"{tag}  - {' '.join(str(value).split())}"


def ris_record(record: dict) -> list[str]:
    lines = [_ris_line("TY", ris_type(record))]
    lines += [_ris_line("AU", a) for a in record.get("authors") or [] if a]
    lines.append(_ris_line("TI", record["title"]))
    if record.get("abstract"):
        lines.append(_ris_line("AB", record["abstract"]))
    if record.get("journal"):
        lines.append(_ris_line("JO" if record["kind"] == "paper" else "PB", record["journal"]))
    if record.get("year"):
        lines.append(_ris_line("PY", record["year"]))
    if record.get("date"):
        lines.append(_ris_line("DA", record["date"].replace("-", "/")))
    if record.get("doi"):
        lines.append(_ris_line("DO", record["doi"]))
    if record.get("url"):
        lines.append(_ris_line("UR", record["url"]))
    if record.get("pmid"):
        lines.append(_ris_line("AN", f"PMID:{record['pmid']}"))
    elif record.get("nct_id"):
        lines.append(_ris_line("AN", record["nct_id"]))
    keywords = list(record.get("labels") or []) + list(record.get("mesh") or []) + list(record.get("keywords") or [])
    lines += [_ris_line("KW", k) for k in dict.fromkeys(keywords) if k]
    if record.get("relevance") is not None or record.get("why"):
        note = f"spsbot relevance {record['relevance']:.3f}" if record.get("relevance") is not None else "spsbot"
        lines.append(_ris_line("N1", f"{note}: {record['why']}" if record.get("why") else note))
    lines.append(_ris_line("ID", record["id"]))
    lines.append("ER  - ")
    return lines


def write_ris(records: Iterable[dict], out: IO[str]) -> int:
    count = 0
    for record in records:
        out.write("\n".join(ris_record(record)) + "\n\n")
        count += 1
    return count


def write_export(records: Iterable[dict], out: IO[str], fmt: str) -> int:
    """Write records in ``fmt`` (csv | jsonl | ris); return how many were written."""
    writers = {"csv": write_csv, "jsonl": write_jsonl, "ris": write_ris}
    if fmt not in writers:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    return writers[fmt](records, out)
