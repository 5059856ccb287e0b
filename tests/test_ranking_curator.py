"""A curator's judgement decides the judged item's label, whatever the seed, and with few labels it
still moves the item's neighbours (bot.ranking.feedback); the issue's case end to end: `spsbot
label ITEM irrelevant` on a profile without labelled examples, then `spsbot rank`."""

import numpy as np
import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.config import load_config
from bot.ranking import feedback as FB
from bot.ranking.scorer import Ranker
from bot.store import open_db, save_items
from bot.store.ranking import get_scores
from maintainer_kit import use_fake_model
from conftest import FakeEmbedder

CASES = [  # near-duplicates of one another, all naming the topic (unsupervised: relevant)
    ("Stiff person syndrome after influenza vaccination", "A man developed stiff person syndrome with "
     "stiffness and spasms two weeks after influenza vaccination. GAD65 antibodies were high."),
    ("Stiff person syndrome following influenza vaccination", "A woman developed stiff person syndrome "
     "with spasms and stiffness three weeks after influenza vaccination. GAD65 antibodies were high."),
    ("Stiff person syndrome and influenza vaccination: a case", "Stiff person syndrome with stiffness and "
     "spasms began after influenza vaccination in a man. GAD65 antibodies were high."),
]
OTHER = ("Intrathecal baclofen in stiff person syndrome", "Twelve patients with stiff person syndrome "
         "received an intrathecal baclofen pump; falls and spasms decreased over two years.")


def records():
    return [{"id": f"pmid:{i}", "kind": "paper", "title": t, "text": a} for i, (t, a) in enumerate([*CASES, OTHER])]


def seedless(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text('[ranking]\nseed = "none"\n', encoding="utf-8")
    return load_config(path)


def test_the_curator_decides_and_moves_the_neighbours_not_the_rest(tmp_path):
    config, embedder = seedless(tmp_path), FakeEmbedder()
    plain = {r["id"]: r for r in Ranker(config, embedder).score(records())}
    assert all(plain[f"pmid:{i}"]["relevant"] for i in range(4))  # similarity and terms say "about SPS"
    judged = [{**records()[0], "relevant": False}, {**records()[1], "relevant": False}]
    ranker = Ranker(config, embedder, feedback=judged)
    assert ranker.model.targets == {}  # two labels: nothing to train on
    after = {r["id"]: r for r in ranker.score(records())}
    assert (after["pmid:0"]["relevance"], after["pmid:0"]["relevant"]) == (0.0, False)  # the curator's word
    assert (after["pmid:1"]["relevance"], after["pmid:1"]["relevant"]) == (0.0, False)
    assert after["pmid:2"]["relevance"] < plain["pmid:2"]["relevance"] - 0.2    # its near-duplicate moves
    assert after["pmid:3"]["relevance"] > plain["pmid:3"]["relevance"] - 0.05   # an unrelated item barely


def test_neighbour_adjustment_formula():
    judged = FB.Judged(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
                       {"relevance": np.array([0.0, np.nan])})
    cos = (1 + FB.NEIGHBOUR_FLOOR) / 2  # halfway between the floor and a duplicate
    docs = np.array([[1.0, 0.0], [cos, np.sqrt(1 - cos ** 2)], [0.6, 0.8]], dtype=np.float32)
    out = FB.neighbour_adjusted(np.array([0.9, 0.9, 0.9]), docs, judged, "relevance")
    assert out[0] == pytest.approx(0.9 / (1 + FB.NEIGHBOUR_WEIGHT))  # a duplicate of an irrelevant item
    assert out[1] == pytest.approx(0.9 / (1 + FB.NEIGHBOUR_WEIGHT / 4), rel=1e-4)  # a closer-than-floor neighbour
    assert out[2] == pytest.approx(0.9)                                 # cosine 0.6: not a neighbour
    assert list(FB.curator_decides(np.array([0.9, 0.2]), ["a", "x"], judged, "relevance")) == [0.0, 0.2]
    assert FB.model_share(0) == 0 and FB.model_share(20) == 0.5


def test_label_irrelevant_then_rank_hides_the_item(env_isolated, monkeypatch):
    monkeypatch.setenv("SPSBOT_CONFIG", str(env_isolated / "profile.toml"))
    seedless(env_isolated)
    use_fake_model(monkeypatch)
    db = open_db(env_isolated / "cli.db")
    save_items(db, [{"kind": "paper", "pmid": str(i), "title": t, "abstract": a}
                    for i, (t, a) in enumerate([*CASES, OTHER])], source="pubmed")
    db.close()
    runner = CliRunner()
    assert runner.invoke(cli, ["rank"]).exit_code == 0
    before = {k: v["relevance"] for k, v in get_scores(open_db(env_isolated / "cli.db")).items()}
    assert before["pmid:0"] > 0.5  # similarity and terms alone call it relevant
    assert runner.invoke(cli, ["label", "pmid:0", "irrelevant"]).exit_code == 0
    assert runner.invoke(cli, ["label", "pmid:3", "relevant", "--theme", "symptomatic"]).exit_code == 0
    result = runner.invoke(cli, ["rank"])
    assert result.exit_code == 0 and "scored 4 items" in result.output, result.output
    scores = get_scores(open_db(env_isolated / "cli.db"))
    assert (scores["pmid:0"]["relevant"], scores["pmid:0"]["relevance"]) == (False, 0.0)
    assert scores["pmid:3"]["themes"]["symptomatic"] == 1.0 and "symptomatic" in scores["pmid:3"]["labels"]
    assert scores["pmid:1"]["relevance"] < before["pmid:1"]  # its near-duplicate moved with it
