"""What subscribers see: an archive link instead of a command they do not have, the free full
text, volume/issue/pages, readable trial changes, honest status badges, and evidence sentences
that are content (no section labels, no journal boilerplate)."""

import json
import re

import pytest

from bot.config import load_config
from bot.digest.builder import Pool, build_digest_data, preview_digest
from bot.digest.entries import make_entry, status_tone
from bot.ranking.scorer import Ranker
from bot.sources.pubmed import parse_efetch
from bot.store import get_item, save_items
from digest_support import NOW, paper, seed, trial
from conftest import FakeEmbedder

GUT = "tests/fixtures/pubmed/efetch_biopython_pubmed4_structured_abstract_italic_title_pmc.xml"


@pytest.fixture
def config(monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    return load_config()


def _config_with(tmp_path, text):
    path = tmp_path / "profile.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_the_first_digest_links_the_archive_and_never_names_a_command(db, tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    seed(db, [paper(1, "A paper")])
    for config, archive in ((load_config(), None),
                            (_config_with(tmp_path, '[digest]\narchive_url = "https://sps.example.org/digest/"\n'),
                             "https://sps.example.org/digest/")):
        _, _, html, text, _ = preview_digest(db, config, "new@example.org")
        assert "spsbot search" not in html and "spsbot search" not in text
        assert "This first digest covers 17–23 Nov 2026 only." in text
        if archive:
            assert f'past issues are in <a href="{archive}"' in html and f"Past issues:\n{archive}\n" in text
        else:
            assert "archive" not in html.lower() and "archive" not in text.lower()


def test_free_full_text_and_volume_issue_pages_from_a_real_record(db, config):
    record = parse_efetch(open(GUT, "rb").read())[0]
    assert (record["extra"]["volume"], record["extra"]["issue"], record["extra"]["pages"]) == ("66", "6", "1116-1122")
    record.update(entrez_date="2026-11-20")
    item_id = save_items(db, [record], source="pubmed")["ids"][0]
    db["scores"].insert({"item_id": item_id, "relevance": 0.9, "relevant": 1, "themes": "{}", "labels": "[]"})
    entry = make_entry(get_item(db, item_id))
    pmc = record["pmcid"]
    assert {"label": "Free full text (PMC)", "url": f"https://pmc.ncbi.nlm.nih.gov/articles/{pmc}/"} in entry["links"]
    assert entry["citation"] == "66(6):1116-1122"
    _, _, html, text, _ = preview_digest(db, config, "ann@example.org")
    assert f"<i>{entry['journal']}</i> 66(6):1116-1122" in html and f"{entry['journal']} 66(6):1116-1122" in text
    assert f"Free full text (PMC):\n  https://pmc.ncbi.nlm.nih.gov/articles/{pmc}/" in text


def test_withdrawn_and_terminated_do_not_wear_completed_green(db, config):
    seed(db, [trial(f"NCT0000000{i}", f"{status} trial", status=status)
              for i, status in enumerate(("COMPLETED", "TERMINATED", "WITHDRAWN", "RECRUITING", "UNKNOWN"))])
    _, _, html, _, _ = preview_digest(db, config, "ann@example.org")
    badges = dict((m.group(2), m.group(1)) for m in re.finditer(
        r'<span style="display:inline-block;background:(#[0-9a-f]{6});[^"]*">([A-Z][a-z]+)</span>', html))
    assert badges["Completed"] == "#ecfdf5"
    assert badges["Terminated"] == badges["Withdrawn"] == "#fef2f2"
    assert len({badges["Completed"], badges["Terminated"], badges["Recruiting"], badges["Unknown"]}) == 4
    assert [status_tone(s) for s in ("Active, not recruiting", "SUSPENDED", "")] == ["open", "stopped", "unknown"]


def test_results_posted_reads_once_in_the_digest(db, config):
    seed(db, [trial("NCT01234567", "A trial")])
    with db.atomic():
        db["trial_changes"].insert({"nct_id": "NCT01234567", "field": "results_posted", "old": "",
                                    "new": "2026-12-05 (actual)", "detected_at": NOW})
    data = build_digest_data(Pool(db, "2026-11-01"), config, None, "2026-11-16T06:00:00+00:00", NOW, False)
    assert data["changes"][0]["changes"] == ["Results posted on 5 Dec 2026"]


LABELLED = {"id": "x", "kind": "paper", "pub_types": ["Journal Article"],
            "title": "Immunotherapy in stiff person syndrome: a cohort",
            "text": "BACKGROUND: Stiff person syndrome is rare.\n"
                    "METHODS: We reviewed 40 patients treated with rituximab or IVIG.\n"
                    "RESULTS: Rituximab improved stiffness in 12 of 20 patients.\n"
                    "CONCLUSIONS: Immunotherapy helps some patients. Copyright © 2020 John Wiley & Sons A/S. "
                    "Published by John Wiley & Sons Ltd."}


def test_evidence_never_starts_with_a_section_label_or_quotes_boilerplate():
    ranker = Ranker(load_config(), FakeEmbedder(), seed=[])
    records = [LABELLED] + [{"id": r["pmid"], "kind": "paper", "title": r["title"], "text": r["abstract"] or ""}
                            for r in parse_efetch(open("bot/demo_data/pubmed/efetch_demo_articles.xml", "rb").read())
                            if r["abstract"] and ("Copyright" in r["abstract"] or "©" in r["abstract"])][:8]
    assert len(records) == 9
    label = re.compile(r"^[A-Z][A-Z ,&/-]{3,}:\s")
    for record, result in zip(records, ranker.score(records)):
        for theme, ev in result["evidence"].items():
            sentence = ev["sentence"]
            assert sentence in record["title"] or sentence in record["text"], (theme, sentence)  # verbatim
            assert not label.match(sentence), (record["id"], theme, sentence)
            assert "©" not in sentence and "Copyright" not in sentence and "Published by" not in sentence
    assert json.dumps(ranker.score([LABELLED])[0]["evidence"]).count("BACKGROUND") == 0
