"""The ranker's input records, from a file (``spsbot score``), a stored item or a label file.

    records = read_records(Path("papers.xml").read_bytes(), "papers.xml")
    results = Ranker(config, profile_embedder(config)).score(records)

A ranker record is {"id", "kind", "title", "text", "pub_types", "mesh", "keywords"}.
``read_records`` takes JSON Lines (or one JSON array) of such records, a PubMed XML
PubmedArticleSet, or ClinicalTrials.gov v2 JSON (a /studies page, one study, or a list of
studies); ``record_for_ranking`` makes one from an item, stored (JSON columns as text) or just
parsed (lists and dicts). A file that cannot be read raises ``RecordError``, one line naming the
file and the line, record or study.
"""

from __future__ import annotations

import csv
import io
import json

from bot.errors import UserError, one_line
from bot.store import loads


class RecordError(UserError, ValueError):
    """An input the ranker cannot read; str() is one line for the user, naming where."""


def _decoded(value, default):
    """A JSON column's value: as given when already decoded, else decoded (``bot.store.loads``)."""
    return value if isinstance(value, type(default)) else loads(value, default)


def record_for_ranking(item: dict) -> dict:
    """An item (an ``items`` row, or a source's parsed record with an ``id``) as a ranker record."""
    text = item.get("abstract") or ""
    extra = _decoded(item.get("extra"), {})
    if item.get("kind") == "trial" and extra.get("conditions"):
        # A registration's summary often omits the disease; its conditions list names it.
        text = f"{text}\nConditions: {'; '.join(map(str, extra['conditions']))}.".strip()
    return {"id": item["id"], "kind": item.get("kind"), "title": item.get("title") or "", "text": text,
            "pub_types": _decoded(item.get("pub_types"), []), "mesh": _decoded(item.get("mesh"), []),
            "keywords": _decoded(item.get("keywords"), [])}


def read_records(body: bytes, name: str = "input") -> list[dict]:
    """Ranker records from JSON Lines, a PubMed XML PubmedArticleSet, or ClinicalTrials.gov v2
    JSON (a /studies page or one study). A bad line fails the whole file, naming the line; a
    file that is JSON but of another shape is told apart from one that is not JSON at all."""
    text = body.decode("utf-8-sig", errors="replace")
    if text.lstrip()[:1] == "<":
        return _pubmed_records(body, name)
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as e:
        first = next((line for line in text.splitlines() if line.strip()), "")
        if not _is_json(first):   # not JSON Lines either: say where the document breaks
            raise RecordError(f"{name}: line {e.lineno}: not valid JSON ({e.msg})") from None
    else:
        return _json_records(whole, name)
    records = []
    for number, record in json_lines(text, name):
        problem = record_problem(record)
        if problem:
            raise RecordError(f"{name}: line {number}: {problem}")
        records.append(record)
    return records


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


_SHAPES = "records (JSON Lines, or a list), a ClinicalTrials.gov v2 study or /studies page"
_JSON_KINDS = {str: "a string", int: "a number", float: "a number", bool: "true/false", type(None): "null"}


def _json_records(whole, name: str) -> list[dict]:
    """The records of a file that is one JSON document: a record, a list of records or of v2
    studies, or a v2 study or /studies page."""
    if isinstance(whole, dict) and ("studies" in whole or "protocolSection" in whole):
        return _ctgov_records(whole, name)
    if isinstance(whole, dict):
        problem = record_problem(whole)
        if problem and problem.startswith("valid JSON"):
            raise RecordError(f"{name}: valid JSON, but neither a record ({problem.split(': ', 1)[1]}) nor "
                              "ClinicalTrials.gov v2 JSON (no 'studies' or 'protocolSection')")
        if problem:
            raise RecordError(f"{name}: line 1: {problem}")
        return [whole]
    if not isinstance(whole, list):
        raise RecordError(f"{name}: valid JSON, but {_JSON_KINDS.get(type(whole), 'a value')}, not {_SHAPES}")
    if whole and all(isinstance(x, dict) and "protocolSection" in x for x in whole):
        return _ctgov_records(whole, name)
    for number, record in enumerate(whole, start=1):
        problem = record_problem(record)
        if problem:
            raise RecordError(f"{name}: record {number}: {problem}")
    return whole


def json_lines(text: str, name: str) -> list[tuple[int, object]]:
    """(line number, decoded object) for each non-blank line; a bad line is one error naming it."""
    decoded = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            decoded.append((number, json.loads(line)))
        except json.JSONDecodeError as e:
            raise RecordError(f"{name}: line {number}: not valid JSON ({e.msg})") from None
    return decoded


def record_problem(record) -> str | None:
    """What makes ``record`` unusable as a ranker record (None when it is fine). A value that is
    valid JSON but no record at all says so ("valid JSON, but not a record: …")."""
    if not isinstance(record, dict):
        return "valid JSON, but not a record: expected a JSON object"
    if not any(isinstance(record.get(k), str) and record[k].strip() for k in ("title", "text")):
        return "valid JSON, but not a record: a record needs a non-empty 'title' or 'text'"
    for key in ("pub_types", "mesh", "keywords"):
        if key in record and record[key] is not None and not isinstance(record[key], list):
            return f"'{key}' must be a list"
    return None


def _pubmed_records(body: bytes, name: str) -> list[dict]:
    from bot.sources.pubmed import parse_efetch
    try:
        parsed = parse_efetch(body)
    except Exception as e:  # noqa: BLE001 - unusable XML: one line, exit 1
        raise RecordError(f"{name}: not a readable PubMed XML file ({e})") from None
    return [record_for_ranking({**r, "id": f"pmid:{r['pmid']}" if r.get("pmid") else r.get("id")}) for r in parsed]


def _ctgov_records(data, name: str) -> list[dict]:
    from bot.sources.clinicaltrials import parse_study
    studies = data.get("studies", []) if isinstance(data, dict) and "studies" in data else (
        [data] if isinstance(data, dict) else data)
    if not isinstance(studies, list):
        raise RecordError(f"{name}: valid JSON, but not a ClinicalTrials.gov v2 /studies page "
                          "('studies' is not a list)")
    records = []
    for number, study in enumerate(studies, start=1):
        try:
            parsed = parse_study(study)
        except (ValueError, AttributeError, TypeError, KeyError) as e:
            raise RecordError(f"{name}: study {number}: valid JSON, but not a ClinicalTrials.gov v2 study "
                              f"({one_line(e)})") from None
        records.append(record_for_ranking({"id": f"nct:{parsed['nct_id']}", **parsed}))
    return records


def read_labels(text: str, name: str) -> list[tuple[int, str, str, str | None]]:
    """Curator judgements from a file, as (line number, item id, label, theme or None): JSON
    Lines with "item_id", "label"[, "theme"], or CSV with the header item_id,label[,theme].
    The label is checked by the caller (it names the line)."""
    rows = []
    if text.lstrip().startswith("{"):
        for number, obj in json_lines(text, name):
            if not isinstance(obj, dict) or not obj.get("item_id") or not obj.get("label"):
                raise RecordError(f"{name}: line {number}: needs 'item_id' and 'label'")
            rows.append((number, obj["item_id"], obj["label"], obj.get("theme") or None))
        return rows
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"item_id", "label"} <= set(reader.fieldnames):
        raise RecordError(f"{name}: a CSV needs a header with item_id,label[,theme]")
    for row in reader:
        if not row.get("item_id") or not row.get("label"):
            raise RecordError(f"{name}: line {reader.line_num}: needs item_id and label")
        rows.append((reader.line_num, row["item_id"].strip(), row["label"].strip(),
                     (row.get("theme") or "").strip() or None))
    return rows
