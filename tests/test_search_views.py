"""The Datasette-friendly views (migration 005) and the database opening in Datasette itself."""

from __future__ import annotations

import asyncio
import pytest

from bot.store import save_items
from searchkit import seed_store


def _trial(nct_id: str, status: str, enrollment: int) -> dict:
    extra = {"overall_status": status, "enrollment": enrollment, "phases": ["PHASE2"]}
    return {"kind": "trial", "source": "ctgov", "nct_id": nct_id, "title": f"Trial {nct_id} of IVIG in SPS",
            "extra": extra, "version_date": "2026-01-01"}


@pytest.fixture
def populated(db):
    from bot.store.trials import save_trials
    seed_store(db)
    save_trials(db, [_trial("NCT09000001", "RECRUITING", 20), _trial("NCT09000002", "RECRUITING", 30)],
                now="2026-10-01T00:00:00+00:00")
    save_trials(db, [_trial("NCT09000001", "COMPLETED", 24)], now="2026-11-01T00:00:00+00:00")
    paper_ids = save_items(db, [{"kind": "paper", "pmid": "123", "title": "Digest paper one"},
                                {"kind": "paper", "pmid": "124", "title": "Digest paper two"}])["ids"]
    old = db["digests"].insert({"subscriber_id": None, "period_start": "2026-10-01", "period_end": "2026-10-08",
                                "created_at": "2026-10-08T00:00:00+00:00"}).last_pk
    new = db["digests"].insert({"subscriber_id": None, "period_start": "2026-10-08", "period_end": "2026-10-15",
                                "created_at": "2026-10-15T00:00:00+00:00"}).last_pk
    personal = db["digests"].insert({"subscriber_id": 7, "period_start": "2026-10-15", "period_end": "2026-10-22",
                                     "created_at": "2026-10-22T00:00:00+00:00"}).last_pk
    db["digest_items"].insert_all([
        {"digest_id": old, "item_id": paper_ids[0], "section": "theme", "theme": "symptomatic", "position": 1},
        {"digest_id": new, "item_id": paper_ids[1], "section": "theme", "theme": "immunomodulation", "position": 2},
        {"digest_id": new, "item_id": paper_ids[0], "section": "theme", "theme": "immunomodulation", "position": 1},
        {"digest_id": new, "item_id": "change:1", "section": "trial_changes", "theme": None, "position": 1},
        {"digest_id": personal, "item_id": paper_ids[1], "section": "theme", "theme": None, "position": 1},
    ])
    return db


def test_views_exist_and_answer(populated):
    db = populated
    assert {"relevant_papers", "trials_last_change", "latest_digest"} <= set(db.view_names())

    relevant = list(db["relevant_papers"].rows)
    expected = db.execute("SELECT count(*) FROM items JOIN scores ON scores.item_id = items.id "
                          "WHERE kind = 'paper' AND relevant = 1").fetchone()[0]
    assert len(relevant) == expected > 0
    assert [r["relevance"] for r in relevant] == sorted((r["relevance"] for r in relevant), reverse=True)

    trials = {r["nct_id"]: r for r in db["trials_last_change"].rows}
    changed = trials["NCT09000001"]
    assert changed["overall_status"] == "COMPLETED"
    assert changed["last_change_at"] == "2026-11-01T00:00:00+00:00"
    assert changed["last_change_field"] in ("overall_status", "enrollment")
    assert trials["NCT09000002"]["last_change_at"] is None
    assert list(trials)[0] == "NCT09000001"  # most recently changed first

    latest = list(db["latest_digest"].rows)  # the latest public issue, not the later personal one
    assert [(r["section"], r["item_id"] if r["title"] is None else r["title"]) for r in latest] == [
        ("theme", "Digest paper one"), ("theme", "Digest paper two"), ("trial_changes", "change:1")]
    assert {r["period_end"] for r in latest} == {"2026-10-15"}


def test_database_opens_cleanly_in_datasette(populated, tmp_path):
    from datasette import app as datasette_app  # in the `test` extra of pyproject.toml
    path = populated.execute("PRAGMA database_list").fetchone()[2]
    name = path.rsplit("/", 1)[-1].removesuffix(".db")

    async def fetch_all():
        ds = datasette_app.Datasette([path])
        pages = {}
        for url in (f"/{name}.json", f"/{name}/relevant_papers.json?_shape=array",
                    f"/{name}/trials_last_change.json?_shape=array", f"/{name}/latest_digest.json?_shape=array",
                    f"/{name}/items.json?_search=rituximab&_shape=array&_col=title", f"/{name}/items",
                    f"/{name}/embeddings", f"/{name}/scores", f"/{name}/trials_last_change"):
            response = await ds.client.get(url)
            pages[url] = response
        return pages

    pages = asyncio.run(fetch_all())
    assert all(r.status_code == 200 for r in pages.values()), {u: r.status_code for u, r in pages.items()}
    database = pages[f"/{name}.json"].json()
    tables = {t["name"] for t in database["tables"]}
    assert {"items", "scores", "runs", "trial_changes"} <= tables
    views = {v["name"] if isinstance(v, dict) else v for v in database.get("views", [])}
    assert {"relevant_papers", "trials_last_change", "latest_digest"} <= views
    found = pages[f"/{name}/items.json?_search=rituximab&_shape=array&_col=title"].json()
    expected = populated.execute("SELECT count(*) FROM items_fts WHERE items_fts MATCH 'rituximab'").fetchone()[0]
    assert len(found) == expected > 0
    assert len(pages[f"/{name}/latest_digest.json?_shape=array"].json()) == 3
