"""`spsbot label --review`: the items nearest the ranker's cut, one at a time in the terminal; each
answer is stored at once (and moves its neighbours down the queue); q or end of input stops."""

import numpy as np
import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.ranking.review import ReviewQueue, decision_threshold
from bot.store import open_db
from bot.store.ranking import load_feedback, save_feedback
from digest_support import offline_cli_store, paper
from maintainer_kit import use_fake_model


def _store(env_isolated, monkeypatch):
    """Five scored items, and six judged before (three of each kind: the queue is past its start)."""
    pairs = [paper(1, "Stiff person syndrome cohort", relevance=0.95),
             paper(2, "Unsure: stiffness after a viral illness", relevance=0.52, relevant=0),
             paper(3, "Unsure: GAD antibodies and ataxia", relevance=0.58),
             paper(4, "Arterial stiffness in hypertension", relevance=0.05, relevant=0),
             paper(5, "Unsure: GAD antibodies and ataxia again", relevance=0.57)]
    pairs += [paper(10 + i, f"Judged before {i}", relevance=0.9 if i < 3 else 0.1) for i in range(6)]
    db = offline_cli_store(env_isolated, monkeypatch, pairs)
    for i in range(6):
        save_feedback(db, f"pmid:{10 + i}", "relevant" if i < 3 else "irrelevant")
    db.close()
    use_fake_model(monkeypatch)
    return CliRunner()


def test_review_asks_the_most_uncertain_first_and_stores_each_answer(env_isolated, monkeypatch):
    runner = _store(env_isolated, monkeypatch)
    result = runner.invoke(cli, ["label", "--review", "--limit", "3"], input="y\ns\nn\n")
    assert result.exit_code == 0, result.output
    asked = [line.split()[1] for line in result.output.splitlines() if line.startswith("[")]
    # the cut lies between 0.52 (not relevant) and 0.57 (relevant): 2, 5, 3 are nearest it
    assert asked[0] in ("pmid:2", "pmid:5") and "pmid:1" not in asked and "pmid:4" not in asked
    assert "About Stiff Person Syndrome? [y/n/s/q]" in result.output
    assert "stored 2 judgement(s); run `spsbot rank` to apply them" in result.output
    before = {f"pmid:{10 + i}" for i in range(6)}
    judged = {f["item_id"]: f["label"] for f in load_feedback(open_db(env_isolated / "cli.db"))
              if f["item_id"] not in before}
    assert judged == {asked[0]: "relevant", asked[2]: "irrelevant"}
    again = runner.invoke(cli, ["label", "--review"], input="q\n")  # judged items are not asked again
    first = [line.split()[1] for line in again.output.splitlines() if line.startswith("[")]
    assert first and first[0] not in judged and "stored 0 judgement(s)" in again.output


def test_end_of_input_keeps_what_was_answered(env_isolated, monkeypatch):
    runner = _store(env_isolated, monkeypatch)
    result = runner.invoke(cli, ["label", "--review"], input="n\n")
    assert result.exit_code == 0 and "stored 1 judgement(s)" in result.output
    assert len(load_feedback(open_db(env_isolated / "cli.db"))) == 6 + 1


def test_with_few_labels_the_queue_first_asks_for_the_missing_kind():
    vectors = np.eye(7, dtype=np.float32)
    queue = ReviewQueue(list("abcdefg"), [0.9, 0.8, 0.6, 0.45, 0.3, 0.2, 0.1], vectors, threshold=0.5,
                        known=(2, 1))
    assert queue.next() == "a"           # one relevant label short: the surest relevant item
    queue.answer("a", True)
    assert queue.next() == "g"           # two irrelevant labels short: the surest irrelevant item
    queue.answer("g", None)              # a skip teaches nothing …
    assert queue.next() == "f"           # … so the next surest irrelevant one
    queue.answer("f", False)
    queue.answer("e", False)
    assert queue.labelled == {True: 3, False: 3}
    assert queue.next() == "d"           # both kinds known: the item nearest the cut (0.45)


def test_an_answer_moves_its_near_duplicates_away_from_the_cut():
    vectors = np.array([[1, 0], [0.99, 0.14], [0, 1]], dtype=np.float32)
    queue = ReviewQueue(["a", "b", "c"], [0.50, 0.51, 0.55], vectors, threshold=0.5, known=(3, 3))
    assert queue.next() == "a"
    queue.answer("a", False)           # "a" is not relevant: its near-duplicate "b" drops well below the cut
    assert queue.score_of("b") < 0.3 and queue.next() == "c"
    assert decision_threshold([0.9, 0.7, 0.4], [True, True, False]) == 0.55   # midway between 0.7 and 0.4
    assert decision_threshold([0.9, 0.7], [True, True]) == 0.5                 # one side empty
    assert decision_threshold([0.3, 0.7], [True, False]) == 0.5                # a manual override's verdicts


def test_review_shows_subscribers_votes_beside_an_item(env_isolated, monkeypatch):
    from bot.digest.subscribers import add_subscriber
    from bot.store.subscribers import save_vote
    runner = _store(env_isolated, monkeypatch)
    db = open_db(env_isolated / "cli.db")
    for n, vote in enumerate(["relevant", "relevant", "irrelevant"]):
        row, _ = add_subscriber(db, f"reader{n}@example.org", valid_themes=["immunomodulation"])
        for item in ("pmid:2", "pmid:5"):
            save_vote(db, row["id"], item, vote)
    db.close()
    result = runner.invoke(cli, ["label", "--review", "--limit", "1"], input="s\n")
    assert result.exit_code == 0, result.output
    assert "subscribers' votes: 2 relevant, 1 not relevant" in result.output


def test_the_review_queue_and_the_judgements_are_callable_without_the_cli(env_isolated, monkeypatch, tmp_path):
    from bot.config import load_config
    from bot.ranking.records import RecordError
    from bot.ranking.stage import review_queue, store_judgements
    _store(env_isolated, monkeypatch)
    db, config = open_db(env_isolated / "cli.db"), load_config()
    queue, by_id = review_queue(db, config)
    assert set(by_id) == {f"pmid:{i}" for i in range(1, 6)} and len(queue) == 5  # judged items are not asked
    with pytest.raises(RecordError, match=r"^line 2: no item 'pmid:404' in the database$"):
        store_judgements(db, config, [(1, "pmid:1", "relevant", None), (2, "pmid:404", "relevant", None)])
    assert len(load_feedback(db)) == 6  # one bad row: nothing stored
    assert store_judgements(db, config, [(0, "pmid:1", "irrelevant", "registries")]) == 1
    assert review_queue(open_db(tmp_path / "empty.db"), config) is None
