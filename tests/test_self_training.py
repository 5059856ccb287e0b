"""Self-training for unlabelled themes (bot.ranking.selftrain): the store's records, read by the
pooled theme reader, teach each theme of another topic its own words, once the store holds as many
records as the reader learnt from; the model is rebuilt as the store grows."""

import numpy as np
import pytest

from bot.config import load_config
from bot.ranking import scorer
from bot.ranking import stage
from bot.store import save_items
from conftest import FakeEmbedder

MG = """[topic]
name = "Myasthenia gravis"
acronyms = ["MG"]
pubmed_query = '"myasthenia gravis"[tiab]'
description = "Myasthenia gravis, an autoimmune disease of the neuromuscular junction"
examples = ["patients with myasthenia gravis"]

[[themes]]
name = "symptomatic"
description = "Symptomatic drugs for weakness"
examples = ["acetylcholinesterase inhibitor"]
include_terms = ["pyridostigmine"]
"""
READER_RECORDS = 40   # what the stand-in reader says it learnt from: the pool's minimum


class TermReader:
    """A stand-in for the pooled reader: sure of the theme when one of its terms occurs (the
    generic rows' sixth column counts the theme's terms present), sure it is absent otherwise."""

    def predict_proba(self, rows):
        p = np.where(rows[:, 5] > 0, 0.9, 0.1)
        return np.column_stack([1 - p, p])


@pytest.fixture
def reader(monkeypatch):
    monkeypatch.setattr(scorer, "theme_reader", lambda _model: TermReader())
    monkeypatch.setattr(scorer, "bundled_themes", lambda _model: {"t": (np.zeros((READER_RECORDS, 8)),
                                                                        np.zeros(READER_RECORDS))})


def _pool(n):
    """Stored papers: half name pyridostigmine beside zorblax (a word no theme declares), half do neither."""
    return [{"kind": "paper", "source": "pubmed", "pmid": str(31000000 + i),
             "title": (f"Pyridostigmine and zorblax in myasthenia gravis, report {i}" if i % 2 else
                       f"Thymectomy outcomes in myasthenia gravis, report {i}"),
             "abstract": ("Patients took pyridostigmine; zorblax eased their ptosis." if i % 2 else
                          "Patients underwent thymectomy and were followed for years.")}
            for i in range(n)]


def _config(tmp_path):
    path = tmp_path / "mg.toml"
    path.write_text(MG, encoding="utf-8")
    return load_config(path)


NEW = [{"id": "zorblax", "title": "Zorblax for ptosis in myasthenia gravis", "text": "Zorblax eased ptosis in MG."},
       {"id": "other", "title": "Thymectomy in myasthenia gravis", "text": "Thymectomy in MG, followed for years."}]


def test_unlabelled_themes_learn_the_stores_own_words(db, tmp_path, reader):
    config = _config(tmp_path)
    save_items(db, _pool(READER_RECORDS))
    ranker = stage.make_ranker(db, config, FakeEmbedder())
    assert len(ranker.unlabelled) == READER_RECORDS
    learnt = {r["id"]: r["themes"]["symptomatic"] for r in ranker.score(NEW)}
    assert set(ranker.model.self_trained[0]) == {"symptomatic"}
    plain = {r["id"]: r["themes"]["symptomatic"] for r in scorer.Ranker(config, FakeEmbedder()).score(NEW)}
    assert plain["zorblax"] == pytest.approx(0.1) and plain["other"] == pytest.approx(0.1)  # no term: the reader
    assert learnt["zorblax"] > 0.5 > learnt["other"]   # zorblax came with pyridostigmine in the store


def test_too_small_a_store_keeps_the_reader_and_a_growing_one_rebuilds(db, tmp_path, reader):
    config = _config(tmp_path)
    save_items(db, _pool(READER_RECORDS - 1))
    small = stage.make_ranker(db, config, FakeEmbedder())
    assert small.model.self_trained is None
    assert {r["id"]: r["themes"]["symptomatic"] for r in small.score(NEW)} == pytest.approx(
        {"zorblax": 0.1, "other": 0.1})
    save_items(db, _pool(READER_RECORDS)[-1:])
    enough = stage.make_ranker(db, config, FakeEmbedder())
    assert enough.model.self_trained is not None and enough.fingerprint() != small.fingerprint()
    save_items(db, [{**_pool(1)[0], "pmid": "31999999"}])      # the store grew: a new model
    assert stage.make_ranker(db, config, FakeEmbedder()).fingerprint() != enough.fingerprint()


def test_a_labelled_theme_is_not_self_trained(db, tmp_path, reader):
    config = _config(tmp_path)
    save_items(db, _pool(READER_RECORDS))
    seed = [{"title": f"Pyridostigmine in MG {i}", "text": "pyridostigmine", "relevant": True,
             "themes": {"symptomatic": i % 2}} for i in range(8)]
    ranker = stage.store_ranker(db, config, FakeEmbedder(), seed=seed,
                                unlabelled=stage.make_ranker(db, config, FakeEmbedder()).unlabelled)
    assert ranker.model.self_trained is None and "symptomatic" in ranker.model.targets


def test_the_warning_says_the_themes_are_self_trained(db, tmp_path, reader):
    save_items(db, _pool(READER_RECORDS))
    warning = stage.make_ranker(db, _config(tmp_path), FakeEmbedder()).seed_warning
    assert f"then self-trained on the store's {READER_RECORDS} most recent records" in warning
