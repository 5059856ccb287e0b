"""Subscribers' votes in the ranker: kept apart from curator labels, weighed at [ranking]
vote_weight per net vote (a curator label weighs FEEDBACK_WEIGHT and decides its item)."""

import pytest

from bot.config import ConfigError, load_config
from bot.digest.subscribers import add_subscriber
from bot.ranking.scorer import FEEDBACK_WEIGHT, Ranker
from bot.store import save_items
from bot.ranking.stage import make_ranker, rank_items, training_feedback
from bot.store.ranking import save_feedback
from bot.store.subscribers import save_vote
from conftest import FakeEmbedder
from searchkit import dev_records

PAPERS = [
    {"kind": "paper", "pmid": "1", "title": "Rituximab in stiff person syndrome",
     "abstract": "A woman with anti-GAD65 stiff person syndrome improved after rituximab."},
    {"kind": "paper", "pmid": "2", "title": "Arterial stiffness in hypertension",
     "abstract": "Pulse wave velocity measures arterial stiffness in 300 adults."},
    {"kind": "paper", "pmid": "3", "title": "Baclofen for spasticity after stroke",
     "abstract": "We randomised 60 patients with post-stroke spasticity to baclofen."},
]


@pytest.fixture
def voters(db):
    themes = load_config().theme_names
    save_items(db, PAPERS, source="pubmed")
    for n in range(4):
        add_subscriber(db, f"v{n}@example.org", valid_themes=themes)
    add_subscriber(db, "cur@example.org", valid_themes=themes, curator=True)
    return db


def _by_item(examples):
    return {(ex["id"], ex["source"]): ex for ex in examples}


def test_votes_become_weighted_relevance_examples(voters):
    db = voters
    for subscriber in (1, 2, 3):
        save_vote(db, subscriber, "pmid:2", "relevant")   # 3 up, 1 down: net +2
    save_vote(db, 4, "pmid:2", "irrelevant")
    save_vote(db, 1, "pmid:3", "relevant")               # a tie: no example
    save_vote(db, 2, "pmid:3", "irrelevant")
    examples = _by_item(training_feedback(db, vote_weight=0.5))
    assert set(examples) == {("pmid:2", "votes")}
    assert examples[("pmid:2", "votes")]["relevant"] is True
    assert examples[("pmid:2", "votes")]["weight"] == 1.0  # 0.5 per net vote
    assert examples[("pmid:2", "votes")]["title"] == "Arterial stiffness in hypertension"
    assert training_feedback(db, vote_weight=0) == []  # votes switched off


def test_a_curator_label_decides_and_votes_never_outweigh_it(voters):
    db = voters
    for subscriber in (1, 2, 3, 4):
        save_vote(db, subscriber, "pmid:1", "irrelevant")
        save_vote(db, subscriber, "pmid:2", "relevant")
    save_feedback(db, "pmid:1", "relevant")                         # a curator said relevant
    save_vote(db, 5, "pmid:2", "irrelevant")                        # a curator's vote row is not a vote
    examples = _by_item(training_feedback(db, vote_weight=4.0))
    assert set(examples) == {("pmid:1", "curator"), ("pmid:2", "votes")}
    assert examples[("pmid:1", "curator")]["relevant"] is True
    assert examples[("pmid:1", "curator")]["weight"] == FEEDBACK_WEIGHT
    assert examples[("pmid:2", "votes")]["weight"] == FEEDBACK_WEIGHT  # 4 × 4 capped at one curator label


def test_votes_move_the_score_less_than_a_curator_label(tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_CACHE_DIR", str(tmp_path))
    config = load_config()
    # a small relevance-only seed: training stays fast (the theme targets are not trained)
    seed = [{**r, "themes": {}} for r in dev_records() if r.get("relevant_to_sps") in (0, 2)][:10]
    assert {r["relevant_to_sps"] for r in seed} == {0, 2}
    record = {"id": "x", "title": PAPERS[1]["title"], "text": PAPERS[1]["abstract"]}
    example = {"id": "pmid:2", "title": PAPERS[1]["title"], "text": PAPERS[1]["abstract"], "themes": {},
               "relevant": True}

    def relevance(feedback):
        ranker = Ranker(config, FakeEmbedder(), seed=seed, feedback=feedback)
        return ranker.score([record])[0]["relevance"]

    plain = relevance([])
    one_vote = relevance([{**example, "weight": 1.0, "source": "votes"}])
    curator = relevance([{**example, "weight": FEEDBACK_WEIGHT, "source": "curator"}])
    assert plain < one_vote < curator


def test_a_new_vote_re_ranks_and_vote_weight_is_validated(voters, tmp_path):
    db = voters
    config = load_config()
    fake = FakeEmbedder()
    assert rank_items(db, config, embedder=fake)["scored"] == 3
    assert rank_items(db, config, embedder=fake)["scored"] == 0
    before = make_ranker(db, config, fake).fingerprint()
    save_vote(db, 1, "pmid:3", "irrelevant")
    assert make_ranker(db, config, fake).fingerprint() != before
    assert rank_items(db, config, embedder=fake)["scored"] == 3  # the ranker changed: everything re-scored
    path = tmp_path / "c.toml"
    path.write_text("[ranking]\nvote_weight = 0\n", encoding="utf-8")
    assert make_ranker(db, load_config(path), fake).feedback == []
    path.write_text("[ranking]\nvote_weight = 9\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'vote_weight' in \\[ranking\\] must be between 0 and 5, got 9"):
        load_config(path)
