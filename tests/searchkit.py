"""Helpers for the search / status / export tests: real SPS records into a store."""

from __future__ import annotations

import json
from pathlib import Path


DEV_SUBSET = Path(__file__).parent / "fixtures" / "search" / "dev_subset.jsonl"


def dev_records() -> list[dict]:
    return [json.loads(line) for line in DEV_SUBSET.read_text(encoding="utf-8").splitlines() if line.strip()]


def _bare_doi(doi: str | None) -> str | None:
    """dev.jsonl has some DOIs as resolver URLs; items store the bare DOI."""
    if not doi:
        return None
    for prefix in ("https://doi.org/", "http://dx.doi.org/", "https://dx.doi.org/", "http://doi.org/"):
        if doi.lower().startswith(prefix):
            return doi[len(prefix):]
    return doi


def item_record(dev: dict) -> dict:
    """A dev.jsonl record in the shape ``bot.store.save_items`` takes."""
    raw_id = dev["id"]
    record = {"kind": dev["kind"], "title": dev["title"], "abstract": dev.get("text"),
              "journal": dev.get("journal"), "pub_types": dev.get("pub_types") or [],
              "doi": _bare_doi(dev.get("doi")), "source": "pubmed" if dev["kind"] == "paper" else "ctgov"}
    if dev.get("year"):
        record.update(pub_year=dev["year"], pub_date=str(dev["year"]))
    if raw_id.startswith("PMID:"):
        record["pmid"] = raw_id.split(":", 1)[1]
    elif dev["kind"] == "trial" and raw_id.startswith("NCT"):
        record["nct_id"] = raw_id
    else:
        source = dev.get("source_url_or_path") or ""
        record["url"] = source if source.startswith("http") else f"https://example.org/{raw_id}"
    if dev["kind"] == "trial":
        record["extra"] = {"overall_status": (dev.get("status") or "").upper().replace(" - ", "_")
                           .replace(" ", "_") or None, "phases": dev.get("phase")}
    return record


def seed_store(db, records: list[dict] | None = None, *, scores: bool = True) -> dict[str, str]:
    """Save the dev subset; give each item a score row from its labels. Returns dev id -> item id."""
    from bot.store import save_items
    records = records if records is not None else dev_records()
    counts = save_items(db, [item_record(r) for r in records], now="2026-11-01T00:00:00+00:00")
    mapping = dict(zip([r["id"] for r in records], counts["ids"]))
    if scores:
        rows = []
        for dev in records:
            labels = [name for name, flag in (dev.get("themes") or {}).items() if flag]
            relevance = {2: 0.9, 1: 0.5}.get(dev.get("relevant_to_sps"), 0.1)
            rows.append({"item_id": mapping[dev["id"]], "relevance": relevance, "relevant": int(relevance > 0.6),
                         "themes": json.dumps({n: float(f) for n, f in (dev.get("themes") or {}).items()}),
                         "labels": json.dumps(labels), "why": "seeded from dev labels"})
        db["scores"].insert_all(rows, pk="item_id", replace=True)
    return mapping
