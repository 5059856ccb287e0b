"""Identity (a PMID is authoritative) and configuration values that type-check but make no sense."""

from __future__ import annotations

import json

import pytest

from bot.config import ConfigError, load_config
from bot.sources.pubmed import parse_efetch
from bot.store import save_items


def test_an_erratum_and_its_article_sharing_a_doi_are_two_items(db, fixtures):
    """Real PubMed data has errata that carry their article's DOI. Two PMIDs are two items; a
    feed entry without a PMID and that DOI is the article, not the erratum."""
    folder = fixtures / "pubmed"
    [erratum] = parse_efetch((folder / "efetch_metapub_38962805_Published_Erratum_ErratumFor.xml").read_bytes())
    [article] = parse_efetch((folder / "efetch_hawc_efetch_21813142_doi.xml").read_bytes())
    erratum["doi"] = article["doi"]  # as the publisher left it on the correction notice
    save_items(db, [article], source="pubmed")
    counts = save_items(db, [erratum], source="pubmed")
    assert counts["new"] == 1 and db["items"].count == 2
    kept = db["items"].get(f"pmid:{article['pmid']}")
    assert kept["title"] == article["title"] and kept["pmid"] == article["pmid"]
    assert db["items"].get(f"pmid:{erratum['pmid']}")["title"] == "Correction."
    feed_entry = {"kind": "paper", "source": "feed:journal", "doi": article["doi"].upper(), "title": article["title"]}
    saved = save_items(db, [feed_entry])
    assert saved["ids"] == [f"pmid:{article['pmid']}"] and db["items"].count == 2
    assert json.loads(db["items"].get(f"pmid:{article['pmid']}")["sources"]) == ["feed:journal", "pubmed"]


def test_a_pmid_never_merges_into_another_pmid_by_title(db):
    first = {"kind": "paper", "source": "pubmed", "pmid": "111", "title": "Stiff person syndrome: a long shared title"}
    second = dict(first, pmid="222")
    save_items(db, [first])
    save_items(db, [second])
    assert sorted(r["id"] for r in db["items"].rows) == ["pmid:111", "pmid:222"]


BAD_VALUES = [
    ("[sources.pubmed]\noverlap_days = -1\n",
     "'overlap_days' in [sources.pubmed] must be between 0 and 365, got -1 (line 2)"),
    ("[sources.clinicaltrials]\noverlap_days = -3\n",
     "'overlap_days' in [sources.clinicaltrials] must be between 0 and 365, got -3 (line 2)"),
    ("[email]\ntimeout = 0\n", "'timeout' in [email] must be greater than 0 and at most 600, got 0 (line 2)"),
    ("[email]\ntimeout = nan\n", "'timeout' in [email] must be a finite number, got nan (line 2)"),
    ("[sources.clinicaltrials]\nmin_interval = 90\n",
     "'min_interval' in [sources.clinicaltrials] must be at most 60, got 90 (line 2)"),
    ("[sources.clinicaltrials]\nmin_interval = inf\n",
     "'min_interval' in [sources.clinicaltrials] must be a finite number, got inf (line 2)"),
    ("[sources.pubmed]\nmodified_days = -7\n",
     "'modified_days' in [sources.pubmed] must be between 0 and 365, got -7 (line 2)"),
    ("[digest]\nmax_age_days = 0\n", "'max_age_days' in [digest] must be between 1 and 3660, got 0 (line 2)"),
    ("[ranking]\nrelevance_threshold = 1.5\n",
     "'relevance_threshold' in [ranking] must be between 0 and 1, got 1.5 (line 2)"),
    ('[sources.pubmed]\nbackfill_from = "last year"\n',
     "'backfill_from' in [sources.pubmed] must be a date like 1950/01/01, got 'last year' (line 2)"),
    ('[sources.pubmed]\nbackfill_from = "2026/02/30"\n',
     "'backfill_from' in [sources.pubmed] must be a date like 1950/01/01, got '2026/02/30' (line 2)"),
]


@pytest.mark.parametrize("text, message", BAD_VALUES, ids=[m.split("'")[1] + ":" + t.split("= ")[1].strip()
                                                           for t, m in BAD_VALUES])
def test_nonsense_values_are_config_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.errors == [f"config error: {path}: {message}"]


def test_sensible_edge_values_are_accepted(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text("[sources.pubmed]\noverlap_days = 0\nmodified_days = 0\nbackfill_from = \"2000-01-01\"\n"
                    "[sources.clinicaltrials]\nmin_interval = 0\n[email]\ntimeout = 0.5\n[digest]\nmax_age_days = 1\n",
                    encoding="utf-8")
    config = load_config(path, env={})
    assert config.pubmed["modified_days"] == 0 and config.email["timeout"] == 0.5
