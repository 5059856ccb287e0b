"""The public pages of a PubMed record, a ClinicalTrials.gov study and a DOI: one place for each URL.

Ids are percent-quoted, so a malformed one stored from a feed can never change the URL's path
or host (https://pubmed.ncbi.nlm.nih.gov/, https://clinicaltrials.gov/study/NCT…,
https://www.doi.org/the-identifier/doi-handbook/).
"""

from __future__ import annotations

from urllib.parse import quote

# Characters DOIs use that are safe in a URL path (the DOI Handbook's list, minus "?" and "#").
_DOI_SAFE = "/:;()._-<>"


def pubmed_url(pmid: str | int) -> str:
    """https://pubmed.ncbi.nlm.nih.gov/<pmid>/"""
    return f"https://pubmed.ncbi.nlm.nih.gov/{quote(str(pmid))}/"


def trial_url(nct_id: str) -> str:
    """https://clinicaltrials.gov/study/<NCT id> (the registry's study page)."""
    return f"https://clinicaltrials.gov/study/{quote(str(nct_id).upper())}"


def doi_url(doi: str) -> str:
    """https://doi.org/<doi> (the resolver sends the reader to the publisher)."""
    return "https://doi.org/" + quote(doi, safe=_DOI_SAFE)
