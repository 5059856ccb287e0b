"""Quality tests with the real packaged model (all-MiniLM-L6-v2) and the bundled seed set."""

from __future__ import annotations

import pytest
from conftest import DEV_JSONL

from bot.config import load_config
from bot.ranking.embedder import load_embedder
from bot.ranking.scorer import Ranker
from bot.store import save_items
from bot.ranking.stage import rank_items
from bot.store.ranking import get_scores, save_feedback


@pytest.fixture(scope="module")
def embedder(real_embedder):
    return real_embedder


@pytest.fixture(scope="module")
def ranker(embedder):
    return Ranker(load_config(), embedder)


RITUXIMAB = {
    "id": "case", "kind": "paper", "pub_types": ["Case Reports"],
    "title": "Refractory stiff person syndrome responding to rituximab",
    "text": "A 52-year-old woman presented with progressive axial stiffness and painful spasms. "
            "Serum anti-GAD65 antibodies were markedly elevated. "
            "Diazepam and intravenous immunoglobulin gave only partial relief. "
            "Rituximab led to sustained improvement of stiffness and she walked unaided after six months.",
}
BACLOFEN_STROKE = {
    "id": "stroke", "kind": "paper", "pub_types": ["Randomized Controlled Trial"],
    "title": "Oral baclofen versus tizanidine for post-stroke spasticity",
    "text": "Spasticity affects a third of stroke survivors. We randomised 84 patients with upper-limb "
            "spasticity after ischaemic stroke to baclofen or tizanidine for 12 weeks. Modified Ashworth "
            "scores improved in both arms; drowsiness was more common with tizanidine.",
}
GAD_DIABETES = {
    "id": "t1d", "kind": "paper", "pub_types": ["Journal Article"],
    "title": "GAD65 autoantibodies predict progression to type 1 diabetes in children",
    "text": "Islet autoantibodies against glutamic acid decarboxylase (GAD65) mark autoimmune diabetes. "
            "We followed 1,200 children with a first-degree relative with type 1 diabetes. "
            "GAD65 antibody titres above 100 IU/ml predicted insulin dependence within five years.",
}


def test_rituximab_case_report_is_relevant_with_its_sentence(ranker):
    result = ranker.score([RITUXIMAB])[0]
    assert result["relevant"] and result["relevance"] >= 0.8
    assert "immunomodulation" in result["labels"]
    evidence = result["evidence"]["immunomodulation"]
    assert evidence["sentence"].startswith("Rituximab led to sustained improvement")
    assert "rituximab" in evidence["terms"]
    assert result["why"].startswith("About Stiff Person Syndrome") and "Rituximab led" in result["why"]


def test_hard_negatives_are_not_relevant(ranker):
    stroke, t1d, case = ranker.score([BACLOFEN_STROKE, GAD_DIABETES, RITUXIMAB])
    assert not stroke["relevant"] and not t1d["relevant"]
    assert max(stroke["relevance"], t1d["relevance"]) < case["relevance"] - 0.4
    # Themes are judged whatever the disease: baclofen is symptomatic therapy, titres are biomarkers.
    assert "symptomatic" in stroke["labels"] and "biomarkers" in t1d["labels"]
    assert stroke["why"].startswith("Not about Stiff Person Syndrome")


def test_every_evidence_sentence_is_verbatim(ranker):
    for result, record in zip(ranker.score([RITUXIMAB, GAD_DIABETES]), [RITUXIMAB, GAD_DIABETES]):
        for theme, ev in result["evidence"].items():
            assert ev["sentence"] in record["title"] or ev["sentence"] in record["text"], theme


HYPEREKPLEXIA = [
    ("Glycine receptor antibodies in acquired hyperekplexia",
     "We describe a man with exaggerated startle and falls. Glycine receptor antibodies were found in serum. "
     "Startle responses resolved after immunotherapy."),
    ("Acquired hyperekplexia with glycine receptor antibodies: two cases",
     "Two women developed excessive startle responses and stiffness on startle. Both carried glycine "
     "receptor antibodies. Clonazepam reduced the startle."),
    ("Startle syndrome associated with glycine receptor autoimmunity",
     "A teenager had pathological startle reflexes with falls. Cell-based assays detected glycine "
     "receptor antibodies. Plasma exchange was followed by recovery."),
    ("Exaggerated startle and glycine receptor antibodies in an older adult",
     "An older woman presented with an exaggerated startle reflex and sudden falls. Serum glycine "
     "receptor antibodies were positive. Her startle improved with steroids."),
]
UNRELATED = ("Arterial stiffness measured by pulse wave velocity in hypertension",
             "Pulse wave velocity was measured in 300 adults with hypertension. Arterial stiffness rose with age.")


def test_a_few_curator_labels_move_similar_items(db, embedder):
    config = load_config()
    papers = [{"kind": "paper", "pmid": str(100 + i), "title": t, "abstract": a}
              for i, (t, a) in enumerate(HYPEREKPLEXIA + [UNRELATED])]
    save_items(db, papers, source="pubmed")
    rank_items(db, config, embedder=embedder)
    before = {k: v["relevance"] for k, v in get_scores(db).items()}
    for item_id in ("pmid:100", "pmid:101", "pmid:102"):
        save_feedback(db, item_id, "relevant")
    counts = rank_items(db, config, embedder=embedder)
    assert counts["scored"] == 5 and counts["embedded"] == 0  # re-scored, nothing re-embedded
    after = {k: v["relevance"] for k, v in get_scores(db).items()}
    similar_shift = after["pmid:103"] - before["pmid:103"]
    unrelated_shift = after["pmid:104"] - before["pmid:104"]
    assert similar_shift >= 0.1, (before, after)
    assert similar_shift > unrelated_shift + 0.05


def test_second_rank_with_nothing_new_does_not_load_the_model(db, embedder):
    config = load_config()
    save_items(db, [{"kind": "paper", "pmid": "7", "title": RITUXIMAB["title"], "abstract": RITUXIMAB["text"]}],
               source="pubmed")
    assert rank_items(db, config, embedder=embedder)["scored"] == 1
    fresh = load_embedder()
    assert rank_items(db, config, embedder=fresh) == {"scored": 0, "unchanged": 1, "relevant": 0, "embedded": 0}
    assert fresh.load_count == 0 and not fresh.loaded
    row = get_scores(db)["pmid:7"]
    assert row["relevant"] and "immunomodulation" in row["labels"]


DEV = str(DEV_JSONL)


@pytest.mark.needs_dev_set
# The bundle was computed in float32; bfloat16 arithmetic (precision "auto" on a CPU with AMX) moves
# similarity features by up to ~0.003, which scores do not feel (tests/test_precision.py). int8 has a
# bundle of its own; its activations are quantised per batch, so a record's features also depend on what
# shares its batch (3 records alone vs among the 299 the bundle was built from, in batches of 1,024
# tokens: up to 0.055, mean 0.011; rows' sd 0.27).
@pytest.mark.parametrize("precision, tolerance", [("float32", 1e-3), ("bfloat16", 1e-2), ("int8", 6e-2)])
def test_bundled_seed_rows_are_what_training_computes(embedder, precision, tolerance):
    """The bundle's rows are the dev set's, in order: recomputing a few from their texts with the
    real model gives the same feature and TF-IDF rows (so feedback rows computed now line up)."""
    import json

    import numpy as np

    from bot.ranking import model as M
    from bot.ranking.embedder import Embedder
    ranker = Ranker(load_config(), Embedder(embedder.model_name, precision=precision))
    bundle = ranker.bundle
    assert bundle is not None
    with open(DEV, encoding="utf-8") as f:
        records = [json.loads(line) for _, line in zip(range(3), f)]
    X, texts = ranker.matrix(ranker.prepare(records))
    assert ranker.embedder.compute == precision
    assert np.allclose(X, bundle.X[:3], atol=tolerance)
    T = M.vectorizer_from(bundle.vocabulary, bundle.idf).transform(texts)
    assert np.allclose(T.toarray(), bundle.T[:3].toarray(), atol=1e-5)
    relevant = [r["relevant_to_sps"] == 2 for r in records]
    assert bundle.labels["relevance"][0][:3].tolist() == relevant


# --- one pass per record ("late chunking") with the real model ---------------------------------

def _sentences(record: dict) -> list[str]:
    from bot.ranking.text import record_sentences
    return record_sentences(record)


def test_one_pass_sentence_vectors_stay_close_to_each_sentence_alone(embedder):
    """Pooling a sentence's span of the record's tokens gives a vector about that sentence: of all
    the record's one-pass vectors, each sentence embedded alone is closest to its own (a span
    shifted by one sentence would not be). The vectors also lean towards the record (the title)."""
    import numpy as np
    passage = _sentences(RITUXIMAB)
    assert len(passage) == 5
    together = embedder.encode_passages([passage])[0]
    alone = embedder.encode(passage)
    assert together.shape == alone.shape and np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    sims = together @ alone.T
    assert (sims.argmax(axis=0) == np.arange(len(passage))).all(), sims.round(2)
    assert np.diag(sims).min() > 0.6, np.diag(sims).round(3)
    single = embedder.encode_passages([[passage[-1]]])[0][0]
    assert float(single @ alone[-1]) > 0.97  # alone in its window, it is the plain encoding minus [CLS]/[SEP]


def test_passages_batched_together_match_each_embedded_alone(embedder):
    import numpy as np

    from bot.ranking.embedder import Embedder
    passages = [_sentences(r) for r in (RITUXIMAB, BACLOFEN_STROKE, GAD_DIABETES)]
    # In float32, to the last digits: padding in a shared batch changes nothing (the mask works).
    exact = Embedder(embedder.model_name, precision="float32")
    together = exact.encode_passages(passages)
    for passage, matrix in zip(passages, together):
        assert np.allclose(matrix, exact.encode_passages([passage])[0], atol=1e-4)
    # In bfloat16 another batch shape rounds differently, so only the direction is the same.
    fast = Embedder(embedder.model_name, precision="bfloat16")
    for passage, matrix in zip(passages, fast.encode_passages(passages)):
        assert (matrix * fast.encode_passages([passage])[0]).sum(axis=1).min() > 0.999


def test_a_record_longer_than_its_window_gets_every_sentence(embedder):
    import numpy as np
    from bot.ranking.embedder import Embedder
    # float32: int8 (precision "auto" on a CPU without AMX) quantises activations per batch, so there
    # a window's vectors also depend on its batch companions (tests/test_precision.py).
    narrow = Embedder(embedder.model_name, window=40, precision="float32")  # the shared model, smaller windows
    passage = _sentences(RITUXIMAB)
    vectors = narrow.encode_passages([passage])[0]
    assert vectors.shape[0] == len(passage) and np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # The last sentence (~20 tokens) starts a window of its own: the same vector as alone in one.
    assert np.allclose(vectors[-1], narrow.encode_passages([[passage[-1]]])[0][0], atol=1e-4)
