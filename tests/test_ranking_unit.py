"""Fast tests of the ranker's parts with a fake embedder (the real model runs in
test_ranking_quality.py and test_ranking_cli.py)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DEV_JSONL, FakeEmbedder

from bot.config import load_config
from bot.ranking.embedder import DEFAULT_MODEL
from bot.ranking.model import best_f1_threshold
from bot.ranking.text import query_names, query_phrases, record_sentences, split_sentences, term_pattern
from bot.store import save_items
from bot.ranking.cached_embedder import CachedEmbedder
from bot.ranking.stage import rank_items
from bot.store.ranking import EmbeddingCache, feedback_hash, get_scores, load_feedback, save_feedback


DEV = str(DEV_JSONL)


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
    # publishers set the same name with other dashes: an en dash, a Unicode hyphen, a minus sign
    assert all(term_pattern("Lambert-Eaton myasthenic syndrome").search(f"the Lambert{dash}Eaton myasthenic syndrome")
               for dash in "\u2013\u2010\u2212")
    assert not term_pattern("Lambert-Eaton").search("Lambert/Eaton")


def test_topic_names_come_from_the_pubmed_query():
    phrases = [p.lower() for p in query_phrases(load_config().topic.pubmed_query)]
    assert "stiff person" in phrases and "stiff-man" in phrases and "moersch-woltman" in phrases
    names = [p.lower() for p in query_names(load_config().topic.pubmed_query)]
    assert "stiff person" in names and "stiff-man" in names and "moersch-woltman" in names
    # what the query searches only AND-ed with something else names no topic on its own
    assert "rigidity" in phrases and "gad65" in phrases and "muscle rigidity" in phrases
    assert not {"rigidity", "gad65", "stiffness", "muscle rigidity", "perm"} & set(names)


def test_query_names_read_only_what_an_or_alternative_searches_on_its_own():
    assert query_names('(("abc"[tiab] OR def[tiab])) OR ghi[tiab] NOT jkl[tiab]') == ["abc", "def"]
    assert query_names('("x y"[tiab]) OR (zzz[tiab])') == ["x y", "zzz"]
    assert query_names('("a OR b AND c"[tiab] OR "ddd"[mh])') == ["a OR b AND c", "ddd"]  # quotes hide operators
    assert query_names('("myasthenia gravis"[tiab] OR MG[tiab]) AND humans[mh]') == []  # the topic's name remains
    # a filter restricts which records, not what they are about
    assert query_names('("myasthenia gravis"[tiab] OR myasthenic[tiab]) AND (english[la] OR french[la]) '
                       'AND 2010:2026[dp] NOT "Review"[pt]') == []       # NOT: the alternative is skipped
    assert query_names('("myasthenia gravis"[tiab] OR myasthenic[tiab]) AND (english[la] OR french[la]) '
                       'AND 2010:2026[dp]') == ["myasthenia gravis", "myasthenic"]
    assert query_names('"myasthenia gravis"[tiab] AND "Clinical Trial"[pt]') == ["myasthenia gravis"]


def test_a_topic_name_spelt_twice_is_one_name(tmp_path):
    from bot.ranking.features import build_targets
    query = '"Myasthenia Gravis"[mh] OR "myasthenia gravis"[tiab] OR "myasthenic"[tiab] OR "myasthenia-gravis"[tiab]'
    profile = tmp_path / "p.toml"
    profile.write_text(f"[topic]\nname = 'Myasthenia gravis'\npubmed_query = '{query}'\n", encoding="utf-8")
    assert list(build_targets(load_config(profile, env={}))[0].terms) == ["Myasthenia Gravis", "myasthenic"]


def test_threshold_maximises_f1():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.2, 0.8, 0.9, 0.7, 0.75])
    cut = best_f1_threshold(y, p)
    assert 0.2 < cut < 0.7  # all three positives in, at the cost of one negative (F1 0.86)


def test_unchanged_texts_are_never_embedded_twice(db):
    fake = FakeEmbedder()
    first = CachedEmbedder(fake, EmbeddingCache(db)).encode(["alpha beta", "gamma", "alpha beta"])
    assert fake.encoded == 2 and first.shape == (3, 64) and first.dtype == np.float32
    again = CachedEmbedder(fake, EmbeddingCache(db)).encode(["gamma", "alpha beta", "delta"])
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
    assert fake2.encoded == 3  # only the changed record, whole: title and both sentences (one pass)


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
    # Named like the packaged model, so the bundled seed applies: its rows are precomputed.
    ranker = Ranker(config, FakeEmbedder(model_name=DEFAULT_MODEL))
    assert ranker.bundle is not None
    assert {"relevance", *config.theme_names} <= set(ranker.model.targets)
    assert ranker.embedder.calls == 0  # no feedback: trained on the bundled rows, nothing embedded
    files = list((tmp_path / "models").glob("*.pkl"))
    assert len(files) == 1
    second = Ranker(config, FakeEmbedder(model_name=DEFAULT_MODEL))
    assert set(second.model.targets) == set(ranker.model.targets)
    assert second.embedder.calls == 0  # loaded from disk: nothing embedded, nothing trained


@pytest.mark.parametrize("code", [
    "import bot.cli",
    "from bot.ranking.embedder import load_embedder; e = load_embedder(); assert e.model_name",
    "from bot.cli import cli; from click.testing import CliRunner; "
    "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0",
])
def test_the_model_library_is_imported_lazily(code):
    check = (code + "\nimport sys\n"
             "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'loaded'")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_seed_bundle_is_bundled_and_well_formed():
    from bot.ranking.scorer import Ranker, load_seed, targets_fingerprint
    from bot.ranking.seed import bundled_seed
    config = load_config()
    assert load_seed(config) == []  # the bundled seed ships no texts
    bundle = bundled_seed()
    n, d = bundle.X.shape
    assert n >= 200 and bundle.X.dtype == np.float32 and bundle.T.shape == (n, len(bundle.vocabulary))
    assert bundle.idf.shape == (len(bundle.vocabulary),) and bundle.model == f"{DEFAULT_MODEL}#passage128"
    assert list(bundle.labels) == ["relevance", *config.theme_names]
    for y, mask in bundle.labels.values():
        assert y.shape == mask.shape == (n,) and mask.sum() >= 200 and 0 < y[mask].sum() < mask.sum()
    # It matches the bundled profile under the packaged model (checked without loading the model).
    ranker = Ranker(config, FakeEmbedder(model_name=DEFAULT_MODEL))
    assert bundle.fingerprint == targets_fingerprint(ranker.targets, f"{DEFAULT_MODEL}#passage128")
    assert ranker.embedder.passage_space == f"{DEFAULT_MODEL}#passage128"  # the default embedding
    assert d == ranker.matrix(ranker.prepare([{"title": "x", "text": "y"}]))[0].shape[1]


def _dev_sentences(min_chars: int) -> set[str]:
    from bot.ranking.text import split_sentences
    with open(DEV, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    out = set()
    for r in records:
        out.update(s for s in [r.get("title") or "", *split_sentences(r.get("text") or "")] if len(s) > min_chars)
    return out


def _bundled_strings(path: Path) -> str:
    """A profile file's text; for an npz, every string array in it (the file itself is compressed)."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return "\n".join(" ".join(map(str, z[k].ravel())) for k in z.files if z[k].dtype.kind == "U")
    return path.read_bytes().decode("utf-8", errors="replace")


@pytest.mark.needs_dev_set
def test_no_dev_text_is_shipped_in_the_profiles():
    import bot.profiles
    sentences = _dev_sentences(80)
    assert len(sentences) > 1000
    files = [p for p in Path(bot.profiles.__file__).parent.iterdir() if p.is_file() and p.suffix != ".py"]
    assert {p.name for p in files} >= {"sps.toml", "sps_seed.npz", "sps_seed.json"}
    for path in files:
        text = _bundled_strings(path)
        shipped = [s for s in sentences if s in text]
        assert not shipped, (path.name, shipped[:3])
    # The vocabulary is terms, not sentences.
    from bot.ranking.seed import bundled_seed
    assert max(len(t) for t in bundled_seed().vocabulary) < 80


def test_changed_themes_or_model_lose_the_bundle_where_it_no_longer_fits(tmp_path, caplog):
    from bot.ranking.scorer import Ranker
    path = tmp_path / "t.toml"
    path.write_text('[[themes]]\nname = "diagnosis"\ndescription = "How SPS is diagnosed"\n'
                    'include_terms = ["EMG"]\n', encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="bot.ranking.scorer"):
        changed = Ranker(load_config(path), FakeEmbedder(model_name=DEFAULT_MODEL))
        other_model = Ranker(load_config(), FakeEmbedder())
    # the topic is unchanged: relevance keeps the seed; the edited theme loses it (tests/test_ranking_seed_fit.py)
    assert (changed.seed_fit.kept, changed.seed_fit.dropped) == (["relevance"], ["diagnosis"])
    assert other_model.bundle is None
    notes = [r for r in caplog.records if "bundled SPS seed" in r.getMessage()]
    assert len(notes) == 2 and all(r.levelno == logging.WARNING for r in notes)
    assert "no longer fits diagnosis" in notes[0].getMessage() and "lower precision" in notes[1].getMessage()
    assert other_model.model.targets == {}  # no seed, no feedback: similarity and terms only
    result = other_model.score([{"id": "a", "title": PAPERS[0]["title"], "text": PAPERS[0]["abstract"]}])[0]
    assert 0 <= result["relevance"] <= 1 and set(result["themes"]) == set(other_model.target_names[1:])


def test_feedback_rows_line_up_with_the_bundle(tmp_path, monkeypatch):
    from bot.ranking.scorer import Ranker
    from bot.ranking.seed import bundled_seed
    monkeypatch.setenv("SPSBOT_CACHE_DIR", str(tmp_path))
    config = load_config()
    feedback = [{"id": "pmid:3", "title": PAPERS[2]["title"], "text": PAPERS[2]["abstract"], "relevant": True,
                 "themes": {"registries": 1}}]
    plain = Ranker(config, FakeEmbedder(model_name=DEFAULT_MODEL))
    judged = Ranker(config, FakeEmbedder(model_name=DEFAULT_MODEL), feedback=feedback)
    assert judged.fingerprint() != plain.fingerprint()
    vocabulary = bundled_seed().vocabulary
    assert judged.model.vectorizer.get_feature_names_out().tolist() == vocabulary  # the bundled columns
    assert judged.embedder.calls > 0  # the feedback record was embedded (the seed's rows were not)
    assert judged.model.targets["relevance"].n_train == plain.model.targets["relevance"].n_train + 1
    assert judged.model.targets["registries"].n_pos == plain.model.targets["registries"].n_pos + 1
    record = {"id": "x", "title": PAPERS[2]["title"], "text": PAPERS[2]["abstract"]}
    assert judged.score([record])[0]["relevance"] > plain.score([record])[0]["relevance"]


def test_a_user_seed_file_with_texts_still_trains(tmp_path, monkeypatch):
    from bot.ranking.scorer import Ranker
    monkeypatch.setenv("SPSBOT_CACHE_DIR", str(tmp_path))
    with open(Path(__file__).parent / "fixtures" / "search" / "dev_subset.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()][:60]
    seed = tmp_path / "seed.jsonl"
    seed.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    path = tmp_path / "c.toml"
    path.write_text(f'[ranking]\nseed = "{seed}"\n', encoding="utf-8")
    ranker = Ranker(load_config(path), FakeEmbedder(model_name=DEFAULT_MODEL))
    assert ranker.bundle is None and len(ranker.seed) == 60
    assert "relevance" in ranker.model.targets and ranker.model.targets["relevance"].n_train == 60
    vocabulary = ranker.model.vectorizer.get_feature_names_out().tolist()
    assert vocabulary != bundled_vocabulary() and len(vocabulary) < len(bundled_vocabulary())  # its own


def bundled_vocabulary() -> list[str]:
    from bot.ranking.seed import bundled_seed
    return bundled_seed().vocabulary
