"""One pass per record ("late chunking"): window packing, span pooling, the passage cache and the
configuration switch — with token ids and a fake embedder (the real model's pooling is checked in
test_ranking_quality.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FakeEmbedder
from test_ranking_unit import PAPERS

from bot.config import ConfigError, load_config
from bot.ranking import passages as P
from bot.ranking.embedder import embedder_for
from bot.store import save_items
from bot.ranking.cached_embedder import CachedEmbedder, passage_key
from bot.ranking.stage import rank_items
from bot.store.ranking import EmbeddingCache

CLS, SEP = 101, 102


def test_sentences_are_laid_end_to_end_in_one_window_with_their_spans():
    windows = P.pack_windows([[[1, 2], [3, 4, 5]], [[6]]], CLS, SEP, window=16)
    assert [w.ids for w in windows] == [[CLS, 1, 2, 3, 4, 5, SEP], [CLS, 6, SEP]]
    assert windows[0].spans == [(0, 0, 1, 3), (0, 1, 3, 6)] and windows[1].spans == [(1, 0, 1, 2)]
    for w in windows:  # a span never covers a special token
        assert all(CLS not in w.ids[a:b] and SEP not in w.ids[a:b] for _, _, a, b in w.spans)


def test_a_long_record_continues_in_the_next_window_and_a_long_sentence_is_cut():
    passage = [list(range(1, 5)), list(range(10, 14)), list(range(20, 40))]   # 4 + 4 + 20 tokens
    windows = P.pack_windows([passage], CLS, SEP, window=10)                  # room for 8
    assert [w.ids for w in windows] == [[CLS, 1, 2, 3, 4, 10, 11, 12, 13, SEP],
                                        [CLS, *range(20, 28), SEP]]
    assert [s for w in windows for s in w.spans] == [(0, 0, 1, 5), (0, 1, 5, 9), (0, 2, 1, 9)]
    assert max(len(w.ids) for w in windows) <= 10


def test_an_empty_sentence_gets_a_window_of_its_own():
    windows = P.pack_windows([[[], [7, 8]]], CLS, SEP, window=8)
    assert [(w.ids, w.spans) for w in windows] == [([CLS, SEP], [(0, 0, 0, 2)]), ([CLS, 7, 8, SEP], [(0, 1, 1, 3)])]
    with pytest.raises(ValueError):
        P.pack_windows([[[1]]], CLS, SEP, window=2)


def test_batches_are_length_sorted_and_bounded_by_tokens():
    windows = [P.Window([0] * n) for n in (5, 50, 7, 48, 6, 49)]
    batches = P.token_batches(windows, batch_tokens=100)
    assert [[len(w.ids) for w in b] for b in batches] == [[50, 49], [48, 7], [6, 5]]
    assert all(len(b) * len(b[0].ids) <= 100 for b in batches)
    ids, mask = P.padded(batches[1], pad_id=0)
    assert ids.shape == mask.shape == (2, 48) and mask.sum(axis=1).tolist() == [48, 7]


def test_each_sentence_vector_is_the_mean_of_its_own_tokens():
    windows = P.pack_windows([[[1, 2], [3]], [[4, 5, 6]]], CLS, SEP, window=16)
    rng = np.random.default_rng(0)
    out = [np.zeros((2, 3), dtype=np.float32), np.zeros((1, 3), dtype=np.float32)]
    states = {}
    for batch in P.token_batches(windows):
        ids, _ = P.padded(batch)
        states[id(batch[0])] = s = rng.normal(size=(*ids.shape, 3)).astype(np.float32)
        P.pool_spans(batch, s, out)
        for row, w in enumerate(batch):
            for p, i, a, b in w.spans:
                assert np.allclose(out[p][i], s[row, a:b].mean(axis=0))
    assert np.allclose(np.linalg.norm(P.normalise(out[0]), axis=1), 1.0)


# --- the cache and the switch ----------------------------------------------------------------

def test_a_passage_is_cached_as_one_row_and_a_rerun_embeds_nothing(db):
    fake = FakeEmbedder()
    passages = [["Title one", "First sentence here.", "Second one."], ["Another title", "Only sentence."]]
    first = CachedEmbedder(fake, EmbeddingCache(db)).encode_passages(passages)
    assert [m.shape for m in first] == [(3, 64), (2, 64)] and fake.encoded == 5
    rows = db.execute("select model, dims, length(vector) from embeddings").fetchall()
    space = f"fake-bow#passage{P.DEFAULT_WINDOW}"
    assert sorted(rows) == [(space, 64, 2 * 64 * 4), (space, 64, 3 * 64 * 4)]
    again = CachedEmbedder(FakeEmbedder(), EmbeddingCache(db)).encode_passages(passages)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    fresh = FakeEmbedder()
    CachedEmbedder(fresh, EmbeddingCache(db)).encode_passages(passages)
    assert fresh.calls == 0  # nothing embedded, nothing even asked of the model
    # A record whose text changed is a new passage: embedded whole (its sentences see each other).
    changed = CachedEmbedder(fresh, EmbeddingCache(db)).encode_passages([passages[0] + ["A new third sentence."]])
    assert fresh.encoded == 4 and changed[0].shape == (4, 64)
    assert CachedEmbedder(FakeEmbedder(), EmbeddingCache(db)).encode_passages([["never seen"]], embed=False) == [None]


def test_the_sentences_method_caches_each_sentence_on_its_own(db):
    fake = FakeEmbedder(embedding="sentences")
    assert fake.passage_space == "fake-bow"
    CachedEmbedder(fake, EmbeddingCache(db)).encode_passages([["Title one", "Shared sentence."],
                                                              ["Title two", "Shared sentence."]])
    assert fake.encoded == 3  # the shared sentence once
    assert set(EmbeddingCache(db).get_many(["Shared sentence.", "Title two"], "fake-bow")) == {
        "Shared sentence.", "Title two"}
    assert db.execute("select count(*) from embeddings where model like '%#passage%'").fetchone()[0] == 0


def test_rank_twice_embeds_nothing_the_second_time(db):
    config = load_config()
    save_items(db, PAPERS, source="pubmed")
    assert rank_items(db, config, embedder=FakeEmbedder())["embedded"] > 0
    again = FakeEmbedder()
    save_items(db, [{**PAPERS[0], "abstract": PAPERS[0]["abstract"] + " Gait normalised."}], source="pubmed")
    counts = rank_items(db, config, embedder=again)
    assert counts["scored"] == 1 and counts["embedded"] == 4  # the changed record, all its sentences
    key = passage_key(["Rituximab in stiff person syndrome",
                       "A woman with anti-GAD65 stiff person syndrome improved after rituximab.",
                       "Spasms resolved.", "Gait normalised."])
    assert EmbeddingCache(db).get_many([key], f"fake-bow#passage{P.DEFAULT_WINDOW}")[key].size == 4 * 64
    assert rank_items(db, config, embedder=FakeEmbedder())["embedded"] == 0


def test_the_embedding_method_and_window_are_configurable(tmp_path):
    default = embedder_for(load_config().ranking)
    assert (default.embedding, default.window, default.loaded) == ("passage", P.DEFAULT_WINDOW, False)
    path = tmp_path / "c.toml"
    path.write_text('[ranking]\nembedding = "sentences"\nwindow = 256\n', encoding="utf-8")
    chosen = embedder_for(load_config(path).ranking)
    # text_space: the model, plus "#int8" where precision "auto" means int8 (a CPU without AMX)
    assert chosen.text_space in ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2#int8")
    assert (chosen.embedding, chosen.window, chosen.passage_space) == ("sentences", 256, chosen.text_space)
    path.write_text('[ranking]\nwindow = 256\n', encoding="utf-8")
    assert embedder_for(load_config(path).ranking).passage_space == f"{chosen.text_space}#passage256"
    for bad, message in (('embedding = "chunks"', "'embedding' in [ranking] must be"),
                         ("window = 1024", "'window' in [ranking] must be between 16 and 512")):
        path.write_text(f"[ranking]\n{bad}\n", encoding="utf-8")
        with pytest.raises(ConfigError) as error:
            load_config(path)
        assert message in str(error.value) and "(line 2)" in str(error.value)


def test_passage_keys_are_the_sentences_in_order():
    assert json.loads(passage_key(["b", "a"])) == ["b", "a"] and passage_key(["a", "b"]) != passage_key(["b", "a"])


def test_term_matching_with_the_substring_prefilter_finds_exactly_what_the_patterns_find():
    """find_terms/count_terms skip a pattern whose first word is absent; they must agree with
    running every pattern (the ranker's features and evidence depend on them)."""
    from pathlib import Path

    from bot.ranking.features import build_targets
    from bot.ranking.text import count_terms, find_terms, record_sentences
    path = Path(__file__).parent / "fixtures" / "search" / "dev_subset.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:15]]
    texts = [s for r in records for s in record_sentences(r)] + [
        "Stiff-Person syndrome", "STIFF  PERSON", "\u212aelvin-sign (K) and long \u017f: \u017ftiff person", "EMG/emg",
        "anti-GAD65", "", "Intravenous immunoglobulin (IVIG)"]
    checked = 0
    for target in build_targets(load_config()):
        for patterns in (target.terms, target.exclude):
            for text in texts:
                assert find_terms(text, patterns) == [t for t, p in patterns.items() if p.search(text)], text
                assert count_terms(text, patterns) == sum(len(p.findall(text)) for p in patterns.values()), text
                checked += bool(patterns)
    assert checked > 1000
    assert find_terms("\u017ftiff person", build_targets(load_config())[0].terms)  # re's case folding kept


def test_features_and_evidence_match_terms_only_where_the_text_has_them():
    """A record's sentence-level term matching tries only the terms its full text contains
    (``Prepared.terms_in_text``); features and evidence must be what trying every term against
    every sentence gives, on real records (the reference below is the straightforward way)."""
    from pathlib import Path

    from bot.ranking import features as F
    from bot.ranking.text import count_terms, find_terms, is_boilerplate, strip_section_label
    path = Path(__file__).parent / "fixtures" / "search" / "dev_subset.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records.append({"title": "", "text": "Intravenous immunoglobulin (IVIG) [...] stiff-person syndrome. EMG."})
    targets = F.build_targets(load_config())
    fake = FakeEmbedder()
    F.embed_targets(targets, fake.encode)

    def reference_best(p, target, others):
        sims = (p.vectors @ target.proto_vectors.T).max(axis=1)
        sims = sims - 0.3 * np.clip(np.max([(p.vectors @ o.proto_vectors.T).max(axis=1) for o in others], axis=0),
                                    0, None)
        hits = [find_terms(s, target.terms) for s in p.sentences]
        bonus = np.array([0.1 if h else 0.0 for h in hits])
        penalty = np.zeros(len(p.sentences))
        if len(p.sentences) > 1:
            penalty[0] = 0.08
        excluded = np.array([-np.inf if i and is_boilerplate(s) else 0.0 for i, s in enumerate(p.sentences)])
        best = int(np.argmax(sims + bonus - penalty + excluded))
        return strip_section_label(p.sentences[best]), (hits[best] or find_terms(p.full_text, target.terms))[:5]

    matched = 0
    for p in F.prepare(records, fake.encode_passages):
        for target in targets:
            text, title = p.full_text, p.sentences[0]
            counts = F.target_features(p, target)[4:8]
            assert counts == pytest.approx([
                np.log1p(count_terms(text, target.terms)), len(find_terms(text, target.terms)),
                np.log1p(count_terms(title, target.terms)), np.log1p(count_terms(text, target.exclude))])
            matched += counts[1] > 0
            if target is not targets[0]:
                others = [t for t in targets[1:] if t is not target]
                assert F.best_sentence(p, target, others) == reference_best(p, target, others)
    assert matched > 100  # terms were really found, not only absent everywhere
