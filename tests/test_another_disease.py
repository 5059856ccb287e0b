"""A profile for another disease: no SPS themes unless it asks, `spsbot init TOPIC` writes a
starter profile that loads, and the digest of a theme-less profile still reads well."""

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.config import load_config
from bot.digest.builder import preview_digest
from bot.digest.subscribers import SubscriberError, add_subscriber
from bot.ranking.scorer import Ranker
from bot.starter import slug_for
from digest_support import NOW, paper, seed
from conftest import FakeEmbedder

MG = """[topic]
name = "Myasthenia gravis"
slug = "mg"
pubmed_query = '"Myasthenia Gravis"[mh] OR "myasthenia gravis"[tiab]'
ctgov_condition = "Myasthenia Gravis"
"""
SPS_THEMES = {"immunomodulation", "symptomatic", "registries", "multidisciplinary", "biomarkers", "diagnosis"}


def _profile(tmp_path, text):
    path = tmp_path / "mg.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_another_disease_gets_no_sps_themes_unless_it_asks(tmp_path):
    config = _profile(tmp_path, MG)
    assert config.topic.name == "Myasthenia gravis" and config.themes == ()
    ranker = Ranker(config, FakeEmbedder())
    assert ranker.target_names == ["relevance"] and ranker.bundle is None
    result = ranker.score([{"id": "a", "title": "Efgartigimod in myasthenia gravis", "text": "It helped."}])[0]
    assert result["themes"] == {} and result["labels"] == []
    asked = _profile(tmp_path, MG.replace('slug = "mg"', 'slug = "mg"\nbundled_themes = true'))
    assert set(asked.theme_names) == SPS_THEMES
    own = _profile(tmp_path, MG + '[[themes]]\nname = "thymectomy"\ndescription = "Thymectomy"\n')
    assert own.theme_names == ["thymectomy"]
    assert set(load_config().theme_names) == SPS_THEMES  # the bundled profile is unchanged


def test_a_theme_less_digest_has_one_section_and_subscribers_are_told(db, tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    config = _profile(tmp_path, MG)
    seed(db, [paper(1, "Efgartigimod in generalized myasthenia gravis", themes={})])
    data, subject, html, text, _ = preview_digest(db, config, "ann@example.org")
    assert [s["title"] for s in data["sections"]] == ["New research"]
    assert subject.startswith("MG digest — 1 new paper") and "NEW RESEARCH (1)" in text
    with pytest.raises(SubscriberError, match="none \\(the profile has no \\[\\[themes\\]\\]\\)"):
        add_subscriber(db, "ann@example.org", valid_themes=config.theme_names, themes="immunomodulation")


def test_init_writes_a_starter_profile_that_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["init", "Myasthenia gravis"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "myasthenia-gravis.toml"
    assert f"wrote {path.name}" in result.output and "spsbot label --review" in result.output
    config = load_config(path)
    assert (config.topic.name, config.topic.slug, config.topic.ctgov_condition) == ("Myasthenia gravis", "mg",
                                                                                  "Myasthenia gravis")
    assert config.topic.pubmed_query == '"Myasthenia gravis"[tiab]'
    assert config.theme_names == ["treatment", "diagnosis", "cohorts"]
    assert not set(config.themes) & set(load_config().themes)  # none of the SPS theme definitions
    text = path.read_text(encoding="utf-8")
    assert text.count("TODO") >= 4 and "stiff" not in text.lower()
    again = runner.invoke(cli, ["init", "Myasthenia gravis"])
    assert again.exit_code == 1 and "exists; use --force" in again.output
    assert runner.invoke(cli, ["init", "Huntington's disease", "-o", "hd.toml"]).exit_code == 0
    assert load_config(tmp_path / "hd.toml").topic.name == "Huntington's disease"


@pytest.mark.parametrize("topic, slug", [("Myasthenia gravis", "mg"), ("Stiff person syndrome", "sps"),
                                         ("Narcolepsy", "narcolepsy"), ("Huntington's disease", "hd")])
def test_slug_for(topic, slug):
    assert slug_for(topic) == slug
