"""Editing one theme keeps the bundled seed for everything else (a fingerprint per target), and a
dropped seed is a WARNING in rank, run and status. A fake embedder that calls itself the packaged
model lets the bundle apply without loading it; training uses the first 40 seed rows (speed)."""

import logging

import numpy as np
import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.config import bundled_profile_text, load_config
from bot.ranking import features as F
from bot.ranking.embedder import DEFAULT_MODEL
from bot.ranking.scorer import Ranker
from bot.ranking.seed import SeedBundle
from conftest import FakeEmbedder

IMMUNO_TERMS = '"inebilizumab", "tocilizumab"]'


def profile(tmp_path, text: str):
    path = tmp_path / "profile.toml"
    path.write_text(text, encoding="utf-8")
    return path


def edited(tmp_path):
    """The bundled profile with one drug name added to one theme (the issue's case)."""
    text = bundled_profile_text()
    assert IMMUNO_TERMS in text
    return profile(tmp_path, text.replace(IMMUNO_TERMS, '"inebilizumab", "tocilizumab", "satralizumab"]'))


def fake_packaged_model() -> FakeEmbedder:
    fake = FakeEmbedder()
    fake.model_name = DEFAULT_MODEL
    return fake


def test_one_edited_theme_drops_the_seed_for_that_theme_only(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        ranker = Ranker(load_config(edited(tmp_path)), fake_packaged_model())
    fit = ranker.seed_fit
    assert fit.dropped == ["immunomodulation"]
    assert fit.kept == ["relevance", "symptomatic", "registries", "multidisciplinary", "biomarkers", "diagnosis"]
    layout = F.column_layout(ranker.targets)
    width = layout[F.SHARED][-1] + 1
    assert sorted(fit.config_columns) == sorted(set(range(width)) - set(layout["immunomodulation"]))
    assert np.array_equal(fit.seed_columns, fit.config_columns)  # same layout: same columns
    warning = next(r for r in caplog.records if "no longer fits immunomodulation" in r.getMessage())
    assert warning.levelno == logging.WARNING and "lower precision" in warning.getMessage()
    assert Ranker(load_config(), fake_packaged_model()).seed_fit.whole  # the bundled profile: all of it


def test_a_removed_and_a_new_theme_map_the_kept_columns(tmp_path):
    text = bundled_profile_text()
    start = text.index('[[themes]]\nname = "registries"')
    end = text.index("[[themes]]", start + 10)
    text = text[:start] + text[end:] + ('\n[[themes]]\nname = "genetics"\ndescription = "Genetic variants"\n')
    # (the new theme lands after [email]: TOML arrays of tables may be split)
    ranker = Ranker(load_config(profile(tmp_path, text)), fake_packaged_model())
    fit = ranker.seed_fit
    assert fit.dropped == ["genetics"] and "registries" not in fit.kept and len(fit.kept) == 6
    own = F.column_layout(F.build_targets(load_config(None, env={})))
    here = F.column_layout(ranker.targets)
    seed_cols, config_cols = list(fit.seed_columns), list(fit.config_columns)
    for name in [*fit.kept, F.SHARED]:  # each kept feature block is read from its own place
        positions = [seed_cols.index(c) for c in own[name]]
        assert [config_cols[p] for p in positions] == list(here[name]), name
    assert not np.array_equal(fit.seed_columns, fit.config_columns)  # registries' block is gone


def small(bundle: SeedBundle, n: int = 40) -> SeedBundle:
    return SeedBundle(X=bundle.X[:n], T=bundle.T[:n], vocabulary=bundle.vocabulary, idf=bundle.idf,
                      labels={k: (y[:n], m[:n]) for k, (y, m) in bundle.labels.items()},
                      fingerprint=bundle.fingerprint, model=bundle.model, digest=bundle.digest + f":{n}")


JUDGED = [("Rituximab for refractory stiffness", 1), ("IVIG infusions every month", 1),
          ("Plasma exchange improved spasms", 1), ("Diazepam at night", 0), ("Physiotherapy twice a week", 0),
          ("Baclofen pump refill", 0)]


def test_kept_targets_train_on_the_seed_and_the_edited_one_on_feedback(tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_CACHE_DIR", str(tmp_path / "models"))
    feedback = [{"id": f"pmid:{i}", "title": t, "text": t, "themes": {"immunomodulation": y}}
                for i, (t, y) in enumerate(JUDGED)]
    text = edited(tmp_path).read_text(encoding="utf-8")  # keep two themes (fewer models to train)
    text = text[:text.index('[[themes]]\nname = "registries"')] + text[text.index("[sources.pubmed]"):]
    ranker = Ranker(load_config(profile(tmp_path, text)), fake_packaged_model(), feedback=feedback)
    assert ranker.seed_fit.kept == ["relevance", "symptomatic"]
    ranker.bundle = ranker.seed_fit.bundle = small(ranker.bundle)
    model = ranker.model
    for name in ranker.seed_fit.kept:
        assert model.targets[name].n_train == 40, name
        assert np.array_equal(model.targets[name].columns, ranker.seed_fit.config_columns), name
    immuno = model.targets["immunomodulation"]
    assert (immuno.n_train, immuno.n_pos, immuno.columns) == (6, 3, None)  # the curator's labels alone
    result = ranker.score([{"id": "new", "title": "Rituximab and IVIG", "text": "Plasma exchange too."}])[0]
    assert set(result["themes"]) == set(ranker.target_names[1:])


@pytest.fixture
def cli_env(env_isolated, monkeypatch):
    from maintainer_kit import use_fake_model
    fake = use_fake_model(monkeypatch, model_name=DEFAULT_MODEL)
    monkeypatch.setenv("SPSBOT_CONFIG", str(edited(env_isolated)))
    return fake


def test_rank_run_and_status_warn_about_the_dropped_seed(cli_env):
    runner = CliRunner()
    for command in (["run", "--no-fetch"], ["rank"]):  # run first: it makes the database rank refuses without
        result = runner.invoke(cli, command)
        assert "WARNING" in result.output and "no longer fits immunomodulation" in result.output, result.output
    status = runner.invoke(cli, ["status"])
    assert "WARNING: the bundled SPS seed no longer fits immunomodulation" in status.output
    assert "lower precision" in status.output
