"""The trained-model cache lives beside the database (the systemd unit hides ~/.cache), and a
cache that cannot be written costs a retrain, never the run."""

import json
import logging

import pytest

from bot.config import load_config
from bot.store import save_items
from bot.ranking.stage import rank_items
from bot.store.ranking import get_scores
from maintainer_kit import use_fake_model

EXAMPLES = [("Stiff person syndrome with GAD65 antibodies", True), ("Stiff-limb syndrome treated with IVIG", True),
            ("Stiff person syndrome: a case report", True), ("Post-stroke spasticity and baclofen", False),
            ("Arterial stiffness in hypertension", False), ("Parkinsonian rigidity and levodopa", False)]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A database in its own folder, a tiny seed file (so the ranker trains), no cache override."""
    monkeypatch.delenv("SPSBOT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))  # where ~/.cache would be
    seed = tmp_path / "seed.jsonl"
    seed.write_text("".join(json.dumps({"title": t, "text": t, "relevant": r}) + "\n" for t, r in EXAMPLES),
                    encoding="utf-8")
    profile = tmp_path / "profile.toml"
    profile.write_text(f'[ranking]\nseed = "{seed}"\n', encoding="utf-8")
    from bot.store import open_db
    (tmp_path / "state").mkdir()
    db = open_db(tmp_path / "state" / "spsbot.db")
    save_items(db, [{"kind": "paper", "pmid": "1", "title": "Stiff person syndrome and rituximab",
                     "abstract": "A woman with stiff person syndrome improved."}], source="pubmed")
    use_fake_model(monkeypatch)
    yield db, load_config(profile), tmp_path
    db.close()


def test_the_trained_model_is_cached_beside_the_database(store):
    db, config, folder = store
    assert rank_items(db, config)["scored"] == 1
    assert len(list((folder / "state" / "cache" / "models").glob("*.pkl"))) == 1
    assert not (folder / "home-cache").exists()


def test_an_unwritable_cache_degrades_to_training_in_memory(store, caplog):
    db, config, folder = store
    (folder / "state" / "cache").write_text("not a folder")  # mkdir fails, even for root
    with caplog.at_level(logging.WARNING):
        counts = rank_items(db, config)
    assert counts["scored"] == 1 and get_scores(db)["pmid:1"]["relevance"] > 0
    assert any("cannot write the trained-model cache" in r.getMessage() and "trained in memory" in r.getMessage()
               for r in caplog.records)
