"""Fast tests of the ranker's parts with a fake embedder (the real model runs in
test_ranking_quality.py and test_ranking_cli.py)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from bot.config import load_config
from bot.ranking.model import best_f1_threshold
from bot.ranking.text import query_phrases, record_sentences, split_sentences, term_pattern
from bot.store import save_items
from bot.store.ranking import (EmbeddingCache, cached_encode, feedback_hash, get_scores, load_feedback,
                               rank_items, save_feedback)


class FakeEmbedder:
    """Hashed bag of words → unit vector: similar wording, similar vectors; no model."""

    def __init__(self, dims: int = 64, model_name: str = "fake-bow"):
        self.model_name, self.dims = model_name, dims
        self.calls, self.encoded, self.load_count = 0, 0, 0

    def encode(self, texts):
        self.calls += 1
        self.encoded += len(texts)
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dims] += 1
            out[i] /= np.linalg.norm(out[i]) or 1.0
        return out


@pytest.fixture(autouse=True)
def model_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPSBOT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "ranking-models"))


PAPERS = [
    {"kind": "paper", "pmid": "1", "title": "Rituximab in stiff person syndrome",
     "abstract": "A woman with anti-GAD65 stiff person syndrome improved after rituximab. Spasms resolved."},
    {"kind": "paper", "pmid": "2", "title": "Baclofen for spasticity after stroke",
     "abstract": "We randomised 60 patients with post-stroke spasticity to baclofen. Tone decreased."},
    {"kind": "paper", "pmid": "3", "title": "Arterial stiffness in hypertension",
     "abstract": "Pulse wave velocity measures arterial stiffness in 300 adults."},
]


def test_sentences_are_verbatim_and_title_first():
    text = ("Background: SPS is rare. We treated 12 patients, e.g. with IVIG. Outcomes were mixed "
            "[...] most patients improved! Two did not.")
    assert split_sentences(text) == ["Background: SPS is rare.", "We treated 12 patients, e.g. with IVIG.",
                                     "Outcomes were mixed", "most patients improved!", "Two did not."]
    assert record_sentences({"title": "T title here", "text": text})[0] == "T title here"


def test_an_embedding_budget_keeps_the_title_and_both_ends_of_the_text():
    text = "First sentence is long enough. Second one says more here. Third one is the middle. Last one: results."
    assert record_sentences({"title": "T", "text": text}, budget=0) == ["T", *split_sentences(text)]
    assert record_sentences({"title": "T", "text": text}, budget=70) == [
        "T", "First sentence is long enough.", "Last one: results."]


def test_term_patterns_match_stems_and_acronyms_carefully():
    assert term_pattern("diagnos").search("Misdiagnosis was common") is None  # word start only
    assert term_pattern("misdiagnos").search("Misdiagnosis was common")
    assert term_pattern("EMG").search("EMG showed CMUA") and not term_pattern("EMG").search("emgality")
    assert term_pattern("stiff person").search("stiff-person syndrome")


def test_topic_names_come_from_the_pubmed_query():
    phrases = [p.lower() for p in query_phrases(load_config().topic.pubmed_query)]
    assert "stiff person" in phrases and "stiff-man" in phrases and "moersch-woltman" in phrases


def test_threshold_maximises_f1():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.2, 0.8, 0.9, 0.7, 0.75])
    cut = best_f1_threshold(y, p)
    assert 0.2 < cut < 0.7  # all three positives in, at the cost of one negative (F1 0.86)


def test_unchanged_texts_are_never_embedded_twice(db):
    fake = FakeEmbedder()
    first = cached_encode(db, fake, ["alpha beta", "gamma", "alpha beta"])
    assert fake.encoded == 2 and first.shape == (3, 64) and first.dtype == np.float32
    again = cached_encode(db, fake, ["gamma", "alpha beta", "delta"])
    assert fake.encoded == 3  # only "delta" is new
    assert np.allclose(again[1], first[0])
    assert set(EmbeddingCache(db).get_many(["gamma", "nope"], "fake-bow")) == {"gamma"}
    assert EmbeddingCache(db).get_many(["gamma"], "another-model") == {}


def test_rank_items_scores_changes_only(db):
    config = load_config()
    save_items(db, PAPERS, source="pubmed")
    fake = FakeEmbedder()
    counts = rank_items(db, config, embedder=fake)
    assert counts["scored"] == 3 and counts["embedded"] > 0
    scores = get_scores(db)
    assert set(scores) == {"pmid:1", "pmid:2", "pmid:3"}
    for row in scores.values():
        assert 0 <= row["relevance"] <= 1 and set(row["themes"]) == set(config.theme_names)
        assert row["why"] and set(row["evidence"]) == set(config.theme_names)
    assert scores["pmid:1"]["relevance"] > scores["pmid:3"]["relevance"]

    fake2 = FakeEmbedder()
    assert rank_items(db, config, embedder=fake2) == {"scored": 0, "unchanged": 3, "relevant": 0, "embedded": 0}
    assert fake2.calls == 0

    save_items(db, [{**PAPERS[2], "abstract": PAPERS[2]["abstract"] + " Stiffness rose with age."}], source="pubmed")
    again = rank_items(db, config, embedder=fake2)
    assert again["scored"] == 1 and again["unchanged"] == 2
    assert fake2.encoded == 1  # only the new sentence


def test_feedback_is_stored_and_changes_the_ranker_state(db):
    config = load_config()
    save_items(db, PAPERS, source="pubmed")
    fake = FakeEmbedder()
    rank_items(db, config, embedder=fake)
    before = feedback_hash(load_feedback(db))
    save_feedback(db, "pmid:3", "relevant")
    save_feedback(db, "pmid:3", "irrelevant")  # the latest judgement wins
    save_feedback(db, "pmid:1", "relevant", theme="immunomodulation")
    rows = load_feedback(db)
    assert [(r["item_id"], r["label"], r["theme"]) for r in rows] == [
        ("pmid:3", "irrelevant", None), ("pmid:1", "relevant", "immunomodulation")]
    assert feedback_hash(rows) != before
    assert rank_items(db, config, embedder=fake)["scored"] == 3  # new feedback: everything re-scored
    save_feedback(db, "pmid:3", "", remove=True)
    assert [r["item_id"] for r in load_feedback(db)] == ["pmid:1"]
    with pytest.raises(ValueError):
        save_feedback(db, "pmid:1", "maybe")


def test_a_topic_without_seed_still_ranks(tmp_path):
    from bot.ranking.scorer import Ranker
    path = tmp_path / "t.toml"
    path.write_text('[topic]\nname = "Arterial stiffness"\npubmed_query = "\\"arterial stiffness\\"[tiab]"\n'
                    'description = "Arterial stiffness and pulse wave velocity"\n', encoding="utf-8")
    config = load_config(path)
    ranker = Ranker(config, FakeEmbedder())
    assert ranker.seed == [] and ranker.model.targets == {}
    records = [{"id": p["pmid"], "title": p["title"], "text": p["abstract"]} for p in PAPERS]
    results = ranker.score(records)
    assert [r["id"] for r in results] == ["1", "2", "3"]
    assert results[2]["relevance"] == max(r["relevance"] for r in results)
    assert all(0 <= v <= 1 for r in results for v in r["themes"].values())


def test_trained_model_is_cached_on_disk(tmp_path, monkeypatch):
    from bot.ranking.scorer import Ranker
    monkeypatch.setenv("SPSBOT_CACHE_DIR", str(tmp_path))
    config = load_config()
    ranker = Ranker(config, FakeEmbedder())
    assert {"relevance", *config.theme_names} <= set(ranker.model.targets)
    files = list((tmp_path / "models").glob("*.pkl"))
    assert len(files) == 1
    second = Ranker(config, FakeEmbedder())
    assert set(second.model.targets) == set(ranker.model.targets)
    assert second.embedder.calls == 0  # loaded from disk: nothing embedded, nothing trained


@pytest.mark.parametrize("code", [
    "import bot.cli",
    "from bot.ranking.embedder import load_embedder; e = load_embedder(); assert e.model_name",
    "from bot.cli import cli; from click.testing import CliRunner; r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0",
])
def test_the_model_library_is_imported_lazily(code):
    check = code + "\nimport sys\nassert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'loaded'"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_seed_file_is_bundled_and_well_formed():
    from bot.ranking.scorer import load_seed
    seed = load_seed(load_config())
    assert len(seed) >= 200
    themes = set(load_config().theme_names)
    assert all(set(r["themes"]) == themes and r["relevant_to_sps"] in (0, 1, 2) for r in seed)
    assert json.dumps(seed[0])
