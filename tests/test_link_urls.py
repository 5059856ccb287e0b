"""bot.links: the one place PubMed, ClinicalTrials.gov and DOI page URLs are made."""

from bot.digest.entries import item_links
from bot.links import doi_url, pubmed_url, trial_url
from bot.sources.clinicaltrials import parse_study
from ctgov_helpers import study


def test_ids_are_quoted_so_they_cannot_change_the_path_or_host():
    assert pubmed_url(40123456) == "https://pubmed.ncbi.nlm.nih.gov/40123456/"
    assert pubmed_url("1?x=<b>") == "https://pubmed.ncbi.nlm.nih.gov/1%3Fx%3D%3Cb%3E/"
    assert trial_url("nct01234567") == "https://clinicaltrials.gov/study/NCT01234567"
    assert trial_url("NCT1#@evil.example") == "https://clinicaltrials.gov/study/NCT1%23%40EVIL.EXAMPLE"
    assert doi_url("10.1002/(SICI)1097-4598") == "https://doi.org/10.1002/(SICI)1097-4598"
    assert doi_url("10.1/a b?c#d") == "https://doi.org/10.1/a%20b%3Fc%23d"


def test_every_place_uses_the_same_urls():
    item = {"pmid": "31", "doi": "10.1/x y", "nct_id": "NCT01234567"}
    assert [link["url"] for link in item_links(item)] == [pubmed_url("31"), doi_url("10.1/x y"),
                                                         trial_url("NCT01234567")]
    assert parse_study(study("NCT03475563"))["url"] == trial_url("NCT03475563")
