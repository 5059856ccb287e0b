"""bot.store.overview: what the demo reports the database holds."""

from bot.store import save_items
from bot.store.overview import item_counts, newest_papers, titles


def test_counts_newest_papers_and_titles(db):
    save_items(db, [{"kind": "paper", "source": "pubmed", "pmid": str(n), "title": f"Paper {n} on SPS",
                     "entrez_date": f"2026-11-{n:02d}"} for n in range(1, 8)])
    save_items(db, [{"kind": "trial", "source": "ctgov", "nct_id": "NCT01234567", "title": "A trial"}])
    assert item_counts(db) == {"items": 8, "papers": 7}
    newest = newest_papers(db, limit=2)
    assert [p["title"] for p in newest] == ["Paper 7 on SPS", "Paper 6 on SPS"]
    assert newest[0]["entrez_date"] == "2026-11-07"
    assert titles(db, [newest[1]["id"], "pmid:nosuch"]) == {newest[1]["id"]: "Paper 6 on SPS"}
    assert titles(db, []) == {}
