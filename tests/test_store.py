"""The store: schema and migrations, natural keys, merging one paper across sources, runs."""

import json
import sqlite3

import pytest

from bot.store import (content_hash, get_state, item_id_for, norm_title, open_db, recorded_run,
                       save_items, set_state)
from bot.store.schema import MIGRATIONS, ensure_db_shape

PAPER = {"kind": "paper", "source": "pubmed", "pmid": "12345678", "doi": "10.1000/ABC.1",
         "title": "Rituximab in stiff person syndrome: a case report",
         "abstract": "A 45-year-old woman with stiff person syndrome improved after rituximab.",
         "authors": ["Doe J", "Roe R"], "pub_types": ["Case Reports"], "pub_year": 2024, "pub_date": "2024-05"}


def test_migrations_apply_once_and_are_recorded(tmp_path):
    db = open_db(tmp_path / "a.db")
    names = [row["name"] for row in db["_migrations"].rows]
    assert names == [name for name, _ in MIGRATIONS]
    assert ensure_db_shape(db) == []          # nothing left to apply
    db.close()
    db = open_db(tmp_path / "a.db")           # re-open: still nothing to apply, data kept
    assert db["_migrations"].count == len(MIGRATIONS)


def test_database_is_a_plain_sqlite_file(tmp_path):
    db = open_db(tmp_path / "plain.db")
    save_items(db, [PAPER])
    db.close()
    conn = sqlite3.connect(tmp_path / "plain.db")
    assert conn.execute("select title from items").fetchone()[0] == PAPER["title"]
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"


def test_natural_keys():
    assert item_id_for(PAPER) == "pmid:12345678"
    assert item_id_for({"kind": "trial", "nct_id": "nct01234567"}) == "nct:NCT01234567"
    assert item_id_for({"kind": "paper", "doi": "10.1/AbC"}) == "doi:10.1/abc"
    assert item_id_for({"kind": "paper", "url": "https://x/1"}).startswith("feed:")


def test_resave_changes_only_last_seen(db):
    first = save_items(db, [PAPER], now="2026-01-01T00:00:00+00:00")
    before = db["items"].get("pmid:12345678")
    second = save_items(db, [PAPER], now="2026-01-08T00:00:00+00:00")
    after = db["items"].get("pmid:12345678")
    assert (first["new"], second["new"], second["updated"], second["unchanged"]) == (1, 0, 0, 1)
    assert after["last_seen"] == "2026-01-08T00:00:00+00:00"
    assert {k: v for k, v in after.items() if k != "last_seen"} == \
           {k: v for k, v in before.items() if k != "last_seen"}
    assert db["items"].count == 1


def test_changed_record_updates_content_and_hash(db):
    save_items(db, [PAPER], now="2026-01-01T00:00:00+00:00")
    changed = dict(PAPER, abstract=PAPER["abstract"] + " Follow-up at 2 years.")
    counts = save_items(db, [changed], now="2026-01-02T00:00:00+00:00")
    row = db["items"].get("pmid:12345678")
    assert counts["updated"] == 1
    assert row["content_hash"] == content_hash(changed) != content_hash(PAPER)
    assert row["updated_at"] == "2026-01-02T00:00:00+00:00"
    assert row["first_seen"] == "2026-01-01T00:00:00+00:00"


def test_feed_item_then_pubmed_is_one_item_with_both_sources(db):
    feed = {"kind": "paper", "source": "feed:neurology", "doi": "10.1000/abc.1",
            "title": "Rituximab in Stiff-Person Syndrome: A Case Report.", "url": "https://journal/x"}
    save_items(db, [feed])
    save_items(db, [PAPER])
    rows = list(db["items"].rows)
    assert len(rows) == 1
    assert json.loads(rows[0]["sources"]) == ["feed:neurology", "pubmed"]
    assert rows[0]["pmid"] == "12345678"
    assert rows[0]["abstract"] == PAPER["abstract"]


def test_feed_never_overwrites_pubmed_fields(db):
    save_items(db, [PAPER])
    save_items(db, [{"kind": "paper", "source": "feed:x", "pmid": "12345678", "title": "Shortened title"}])
    assert db["items"].get("pmid:12345678")["title"] == PAPER["title"]


def test_match_by_normalised_title_but_not_short_titles(db):
    save_items(db, [PAPER])
    save_items(db, [{"kind": "paper", "source": "feed:x",
                     "title": "RITUXIMAB in stiff-person syndrome — a case report"}])
    assert db["items"].count == 1
    save_items(db, [{"kind": "paper", "source": "pubmed", "pmid": "1", "title": "Correction."},
                    {"kind": "paper", "source": "pubmed", "pmid": "2", "title": "Correction."}])
    assert db["items"].count == 3


def test_norm_title():
    assert norm_title("Stiff-Person  Syndrome: Lariboisière!") == "stiff person syndrome lariboisiere"


def test_full_text_search_finds_abstract_words(db):
    save_items(db, [PAPER])
    hits = list(db.query("select items.id from items join items_fts on items.rowid = items_fts.rowid "
                         "where items_fts match ?", ["rituximab"]))
    assert hits == [{"id": "pmid:12345678"}]


def test_failed_save_keeps_nothing_from_the_batch(db):
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL constraint failed: items.title"):
        save_items(db, [PAPER, {"kind": "paper", "source": "pubmed", "pmid": "9"}])  # no title
    assert db["items"].count == 0


def test_recorded_run_marks_ok_and_failed(db):
    with recorded_run(db, "fetch", "pubmed") as run:
        run.counts["new"] = 3
    with pytest.raises(RuntimeError):
        with recorded_run(db, "fetch", "clinicaltrials"):
            raise RuntimeError("boom")
    runs = {row["source"]: row for row in db["runs"].rows}
    assert runs["pubmed"]["status"] == "ok" and json.loads(runs["pubmed"]["counts"]) == {"new": 3}
    assert runs["clinicaltrials"]["status"] == "failed"
    assert "RuntimeError: boom" in runs["clinicaltrials"]["error"]
    assert runs["pubmed"]["finished"] and runs["pubmed"]["duration_s"] is not None


def test_state_is_keyed_by_query(db):
    set_state(db, "pubmed", "query A", last_success="2026-01-01", window_end="2026/01/01")
    assert get_state(db, "pubmed", "query A")["window_end"] == "2026/01/01"
    assert get_state(db, "pubmed", "query B") is None


def test_loads_gives_the_default_for_a_missing_bad_or_mistyped_json_cell():
    from bot.store import loads
    assert loads('["a"]', []) == ["a"] and loads('{"k": 1}', {}) == {"k": 1}
    assert loads(None, []) == [] and loads("", {}) == {} and loads(None) is None
    assert loads("not json", []) == [] and loads("{broken", {}) == {}  # a hand-edited cell
    assert loads('"text"', {}) == {} and loads("[1]", {}) == {} and loads("null", []) == []
    assert loads("3") == 3  # no typed default: whatever the JSON says
