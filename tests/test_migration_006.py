"""Migration 006: ``entrez_date`` means the Entrez date; ``create_date`` and ``quarantine`` are added."""

from __future__ import annotations

import sqlite_utils

from bot.store.schema import MIGRATIONS, ensure_db_shape


def test_an_existing_store_keeps_what_it_held_as_the_create_date(tmp_path, monkeypatch):
    db = sqlite_utils.Database(tmp_path / "old.db")
    monkeypatch.setattr("bot.store.schema.MIGRATIONS", [m for m in MIGRATIONS if m[0] < "006"])
    ensure_db_shape(db)  # a store as it was before m006
    db["items"].insert_all([
        {"id": "pmid:1", "kind": "paper", "title": "A paper", "entrez_date": "2026-11-18"},  # was PubStatus "entrez"
        {"id": "nct:NCT00000001", "kind": "trial", "title": "A trial", "entrez_date": "2024-01-15"}])  # first posted
    monkeypatch.setattr("bot.store.schema.MIGRATIONS", MIGRATIONS)
    assert ensure_db_shape(db)[0] == "006_create_date_and_quarantine"  # (then the later ones)
    rows = {r["id"]: r for r in db["items"].rows}
    assert (rows["pmid:1"]["create_date"], rows["pmid:1"]["entrez_date"]) == ("2026-11-18", "2026-11-18")
    # a first-posted date is no Entrez date: it moves to create_date
    assert (rows["nct:NCT00000001"]["create_date"], rows["nct:NCT00000001"]["entrez_date"]) == ("2024-01-15", None)
    assert db["quarantine"].pks == ["source", "record_id"] and db["quarantine"].count == 0
