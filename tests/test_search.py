"""Local hybrid search: query parsing, FTS safety, filters, fusion, vector cache, CLI.

The store holds real SPS records (tests/fixtures/search/dev_subset.jsonl); the embedding side uses
a fake bag-of-words embedder here (the real model is in test_search_semantic.py).
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.dates import parse_day_option
from bot.search.hybrid import (Filters, SearchError, fts_expression, parse_query, rrf_fuse, search,
                               vector_index)
from conftest import FakeEmbedder
from searchkit import dev_records, seed_store


@pytest.fixture
def store(db):
    mapping = seed_store(db)
    return db, mapping


def _mentions(db, word: str) -> set[str]:
    rows = db.execute("SELECT id FROM items WHERE lower(title) LIKE ? OR lower(abstract) LIKE ?",
                      [f"%{word}%", f"%{word}%"]).fetchall()
    return {r[0] for r in rows}


# --- query parsing and the MATCH expression ------------------------------------------------------

def test_parse_query_phrases_exclusions_prefix_and_or():
    parsed = parse_query('rituximab "stiff person" -review -"case report" ritux* OR ivig')
    assert [[(t.text, t.phrase, t.prefix) for t in g] for g in parsed.groups] == [
        [("rituximab", False, False), ("stiff person", True, False), ("ritux", False, True)],
        [("ivig", False, False)]]
    assert [(t.text, t.phrase) for t in parsed.excluded] == [("review", False), ("case report", True)]
    assert fts_expression(parsed) == ('(("rituximab" "stiff person" "ritux"*) OR ("ivig")) '
                                      'NOT "review" NOT "case report"')


@pytest.mark.parametrize("query", ['"', "*", "(((", "--", "-rituximab", "AND OR NOT", ")(", ""])
def test_queries_with_nothing_to_match_are_a_clear_error(query):
    with pytest.raises(SearchError, match="no words to search for"):
        fts_expression(parse_query(query))


@pytest.mark.parametrize("query", [
    "') OR 1=1 --", "NEAR(", '"unbalanced phrase', "title:rituximab", "NEAR(rituximab stiff)", "rituximab)",
    "abstract: MATCH 'x'", "stiff* *person", 'a"b"c', "rituximab; DROP TABLE items;", "^baclofen",
    "col:{title abstract} : x", "diazepam + baclofen", "\x00nul", "ünïcödé stiff",
])
def test_hostile_input_never_crashes_and_leaves_the_store_intact(store, query):
    db, _ = store
    before = db.execute("SELECT count(*) FROM items").fetchone()[0]
    result = search(db, query, semantic=False)
    assert isinstance(result.hits, list)
    assert db.execute("SELECT count(*) FROM items").fetchone()[0] == before


def test_sql_fragment_is_searched_as_words_not_executed(store):
    db, _ = store
    # The words "drop", "table", "items" appear in no record together: nothing matches, nothing dropped.
    assert search(db, "x'); DROP TABLE items; --", semantic=False).hits == []
    assert "items" in db.table_names()


def test_column_filter_syntax_is_not_obeyed(store):
    db, _ = store
    # FTS5 would read title:rituximab as "rituximab in the title column"; quoted, it is the words.
    with_colon = {h["id"] for h in search(db, "title:rituximab", semantic=False, limit=100).hits}
    assert with_colon == {h["id"] for h in search(db, "title rituximab", semantic=False, limit=100).hits}


# --- relevance and filters -------------------------------------------------------------------------

def test_a_drug_query_finds_the_records_that_mention_it(store):
    db, _ = store
    for drug in ("rituximab", "efgartigimod", "baclofen"):
        expected = _mentions(db, drug)
        assert expected, drug
        found = {h["id"] for h in search(db, drug, semantic=False, limit=200).hits}
        assert found == expected, drug


def test_phrase_needs_adjacent_words_and_exclusion_removes(store):
    db, _ = store
    phrase = {h["id"] for h in search(db, '"intrathecal baclofen"', semantic=False, limit=200).hits}
    both = {h["id"] for h in search(db, "intrathecal baclofen", semantic=False, limit=200).hits}
    assert phrase and phrase <= both
    without = {h["id"] for h in search(db, '"intrathecal baclofen" -pump', semantic=False, limit=200).hits}
    assert without < phrase
    assert not without & _mentions(db, "pump")


def test_or_groups_union(store):
    db, _ = store
    either = {h["id"] for h in search(db, "efgartigimod OR tocilizumab", semantic=False, limit=200).hits}
    assert either == _mentions(db, "efgartigimod") | _mentions(db, "tocilizumab")


def test_filters_kind_theme_dates_pub_type_status(store):
    db, _ = store
    trials = search(db, "syndrome", Filters(kind="trial"), semantic=False, limit=200).hits
    assert trials and {h["kind"] for h in trials} == {"trial"}

    immuno = search(db, "stiff", Filters(themes=["immunomodulation"]), semantic=False, limit=200).hits
    assert immuno and all("immunomodulation" in h["labels"] for h in immuno)

    recent = search(db, "stiff", Filters(since=parse_day_option("2020"), until=parse_day_option("2022", end=True)),
                    semantic=False, limit=200).hits
    assert recent and all(2020 <= h["year"] <= 2022 for h in recent)
    # a year-only date "2020" passes --since 2020-01-01 and --until 2020-12-31 (boundary years kept)
    assert {h["year"] for h in recent} >= {2020, 2022}

    reports = search(db, "stiff", Filters(pub_types=["case report"]), semantic=False, limit=200).hits
    assert reports and all(any("case report" in p.lower() for p in h["pub_types"]) for h in reports)

    recruiting = search(db, "CAR T", Filters(statuses=["not yet recruiting"]), semantic=False, limit=200).hits
    assert [h["status"] for h in recruiting] == ["NOT_YET_RECRUITING"]


def _naive_filtered(db, match, filters, limit):
    from bot.store.search import filter_sql
    where, params = filter_sql(filters)
    return db.execute("SELECT items.rowid FROM items_fts JOIN items ON items.rowid = items_fts.rowid "
                      f"WHERE items_fts MATCH ? AND {where} ORDER BY items_fts.rank LIMIT ?",
                      [match, *params, limit]).fetchall()


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 50])
def test_filtered_fts_reads_deeper_until_enough_pass(store, limit):
    from bot.store.search import fts_rowids
    db, _ = store
    filters = Filters(kind="trial")  # most "syndrome" matches are papers: the slices must grow
    match = fts_expression(parse_query("syndrome"))
    assert [r for r, _ in fts_rowids(db, match, filters, limit)] == [r[0] for r in
                                                                     _naive_filtered(db, match, filters, limit)]


def test_filtered_semantic_candidates_walk_slices_in_order(store):
    from bot.search.hybrid import _filtered_best
    db, _ = store
    rowids = np.asarray([r[0] for r in db.execute("SELECT rowid FROM items ORDER BY rowid DESC")], dtype=np.int64)
    ordered = np.arange(len(rowids))
    trials = {r[0] for r in db.execute("SELECT rowid FROM items WHERE kind = 'trial'")}
    expected = [int(i) for i in ordered if int(rowids[i]) in trials][:5]
    assert _filtered_best(db, Filters(kind="trial"), rowids, ordered, pool=5, block=3) == expected
    assert _filtered_best(db, Filters(kind="trial"), rowids, ordered, pool=500, block=7) == [
        int(i) for i in ordered if int(rowids[i]) in trials]


# --- fusion and the vector side -------------------------------------------------------------------

def test_rrf_fuse_rewards_agreement():
    fused = dict(rrf_fuse([[1, 2, 3], [3, 1, 4]], k=60))
    assert fused[1] > fused[3] > fused[2] > fused[4]
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)


def test_hybrid_adds_embedding_hits_and_caches_vectors(store):
    db, _ = store
    embedder = FakeEmbedder()
    result = search(db, "rituximab", embedder=embedder, limit=30)
    assert any(h["fts_rank"] and h["similarity"] for h in result.hits)   # found by both sides
    assert any(h["fts_rank"] is None and h["similarity"] for h in result.hits)  # meaning only
    assert any("embedded" in note for note in result.notes)
    items = db.execute("SELECT count(*) FROM items").fetchone()[0]
    assert db.execute("SELECT count(*) FROM embeddings WHERE model = ?",
                      [embedder.passage_space + "#doc-mean"]).fetchone()[0] == items
    # second query: only the query text is encoded; the matrix is reused in-process
    embedder.batches.clear()
    index = vector_index(db, embedder.passage_space)
    search(db, "baclofen", embedder=embedder)
    assert embedder.batches == [1]
    assert vector_index(db, embedder.passage_space) is index


def test_exclusions_and_filters_apply_to_embedding_hits(store):
    db, _ = store
    hits = search(db, "rituximab stiff -rituximab", embedder=FakeEmbedder(), limit=100).hits
    assert hits and not {h["id"] for h in hits} & _mentions(db, "rituximab")
    trials = search(db, "rituximab", Filters(kind="trial"), embedder=FakeEmbedder(), limit=100).hits
    assert trials and {h["kind"] for h in trials} == {"trial"}


def test_no_semantic_never_loads_an_embedder(store):
    db, _ = store

    def explode():
        raise AssertionError("the embedder must not be loaded")

    assert search(db, "rituximab", semantic=False, embedder_loader=explode).hits


def test_too_many_missing_vectors_fall_back_to_words(store, monkeypatch):
    import bot.search.hybrid as search_module
    db, _ = store
    embedder = FakeEmbedder()
    search(db, "stiff", embedder=embedder, limit=5, filters=Filters(kind="trial"))  # vectors for all
    monkeypatch.setattr(search_module, "EMBED_ON_THE_FLY_MAX", 10)
    from bot.store import save_items
    save_items(db, [{"kind": "paper", "pmid": str(90000000 + i), "title": f"Rituximab report {i}",
                     "abstract": "Rituximab in a patient."} for i in range(11)])
    embedder.batches.clear()
    result = search(db, "rituximab", embedder=embedder, limit=200)
    assert embedder.batches == [1]  # the query only: the 11 new items were not embedded
    assert any("searched by words only" in n for n in result.notes)
    new_ids = {f"pmid:{90000000 + i}" for i in range(11)}
    found = {h["id"]: h for h in result.hits}
    assert new_ids <= set(found)  # still found, by words
    assert all(found[i]["similarity"] is None and found[i]["fts_rank"] for i in new_ids)


def test_cached_sentence_vectors_are_reused_without_the_model(store, monkeypatch):
    """Items the ranker embedded (sentence vectors cached) get a doc vector with no model call."""
    import bot.search.hybrid as search_module
    from bot.config import load_config
    from bot.ranking.cached_embedder import CachedEmbedder
    from bot.ranking.stage import store_ranker
    from bot.ranking.records import record_for_ranking
    from bot.store.ranking import EmbeddingCache, items_by_id
    db, _ = store
    embedder = FakeEmbedder()
    ids = [r[0] for r in db.execute("SELECT id FROM items")]
    # What `spsbot rank` caches: each record's sentence vectors, keyed by its sentences.
    ranker = store_ranker(db, load_config(), embedder)
    ranker.prepare([record_for_ranking(row) for row in items_by_id(db, ids).values()])
    assert CachedEmbedder(FakeEmbedder(), EmbeddingCache(db)).encode_passages([["not cached"]], embed=False) == [None]
    monkeypatch.setattr(search_module, "EMBED_ON_THE_FLY_MAX", 0)
    embedder.batches.clear()
    result = search(db, "baclofen", embedder=embedder)
    assert embedder.batches == [1]
    assert not any("words only" in n for n in result.notes)
    assert any(h["similarity"] for h in result.hits)


def test_vector_index_notices_new_items(store):
    from bot.store import save_items
    db, _ = store
    embedder = FakeEmbedder()
    search(db, "stiff", embedder=embedder)
    before = vector_index(db, embedder.passage_space)
    save_items(db, [{"kind": "paper", "pmid": "99999999", "title": "Zanubrutinib for a stiff person",
                     "abstract": "A new BTK inhibitor case."}])
    hits = search(db, "zanubrutinib", embedder=embedder).hits
    assert hits[0]["id"] == "pmid:99999999"
    assert vector_index(db, embedder.passage_space) is not before


def test_read_only_store_still_searches(tmp_path):
    from bot.store import open_db
    path = tmp_path / "ro.db"
    db = open_db(path)
    seed_store(db, dev_records()[:20])
    db.close()
    import sqlite_utils
    ro = sqlite_utils.Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    result = search(ro, "stiff", embedder=FakeEmbedder())
    assert result.hits
    assert any("could not cache" in n for n in result.notes)


# --- CLI ----------------------------------------------------------------------------------------

@pytest.fixture
def cli_store(env_isolated):
    from bot.store import open_db
    db = open_db(env_isolated / "cli.db")
    seed_store(db)
    db.close()
    return env_isolated


def test_cli_table_json_csv_and_empty(cli_store):
    runner = CliRunner()
    table = runner.invoke(cli, ["search", "rituximab", "--no-semantic", "-n", "5"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split()[:5] == ["#", "SCORE", "YEAR", "KIND", "TITLE"]
    assert len(lines) == 6 and "https://pubmed.ncbi.nlm.nih.gov/" in table.output

    as_json = runner.invoke(cli, ["search", "rituximab", "--no-semantic", "--json", "--kind", "trial"])
    hits = json.loads(as_json.output)
    assert hits and all(h["kind"] == "trial" and "rituximab" in
                        (h["title"] + json.dumps(h)).lower() or h["fts_rank"] for h in hits)

    as_csv = runner.invoke(cli, ["search", "baclofen", "--no-semantic", "--csv", "--theme", "symptomatic"])
    import csv
    import io
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert rows and all("symptomatic" in r["labels"] for r in rows)

    empty = runner.invoke(cli, ["search", "xyzzyplugh", "--no-semantic"])
    assert empty.exit_code == 0 and empty.output.strip() == "No results for 'xyzzyplugh'."


@pytest.mark.parametrize("args, message", [
    (["*"], "no words to search for"),
    (["x", "--theme", "astrology"], "unknown theme 'astrology'"),
    (["x", "--since", "last week"], "not a date"),
    (["x", "--since", "2024", "--until", "2020"], "is after"),
    (["x", "--status", "recruiting", "--kind", "paper"], "applies to trials"),
    (["x", "--save"], "use it with --live"),
])
def test_cli_user_mistakes_are_one_line(cli_store, args, message):
    result = CliRunner().invoke(cli, ["search", *args, "--no-semantic"])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_hybrid_with_fake_model_and_verbose_notes(cli_store, monkeypatch):
    import bot.search.hybrid as search_module
    monkeypatch.setattr(search_module, "load_default_embedder", lambda model="": FakeEmbedder())
    result = CliRunner().invoke(cli, ["search", "efgartigimod", "--verbose", "--json"])
    assert result.exit_code == 0, result.stderr
    assert "note: embedded" in result.stderr
    hits = json.loads(result.stdout)
    assert any(h["similarity"] is not None for h in hits)
    assert np.isfinite([h["score"] for h in hits]).all()


def test_the_store_answers_for_one_item_and_refuses_a_bad_match_with_its_own_error(store):
    from bot.store.search import MatchError, fts_rowids, scored_item
    db, _ = store
    item_id = db.execute("SELECT id FROM items ORDER BY rowid LIMIT 1").fetchone()[0]
    row = scored_item(db, item_id)
    assert row["id"] == item_id and {"relevance", "labels", "why"} <= set(row)
    assert scored_item(db, "pmid:0") is None
    with pytest.raises(MatchError):  # raw FTS syntax the query builder would never emit
        fts_rowids(db, 'unbalanced "', Filters(), 5)
