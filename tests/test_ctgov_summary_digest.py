"""A trial's brief summary in the digest: the start of it, formatted from the registry's markdown in
the HTML part and as plain lines in the text part, safely, without repeating the quote."""

import json

import pytest

from bot.config import load_config
from bot.digest.builder import build_digests, preview_digest
from bot.digest.render import render_archive_page
from bot.sources.clinicaltrials import parse_study
from ctgov_helpers import study
from digest_support import NOW, seed, trial


@pytest.fixture
def config(monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    return load_config()


def summarised_trial(summary: str, *, sentence: str, nct="NCT07000001"):
    """A trial item whose record kept ``summary`` as its markdown, the ranker quoting ``sentence``."""
    record, score = trial(nct, "Efgartigimod in stiff person syndrome")
    record["extra"]["summary_markdown"] = summary
    score["evidence"] = json.dumps({"immunomodulation": {"sentence": sentence, "terms": []}})
    return record, score


def test_a_long_summary_shows_its_first_blocks_then_an_ellipsis(db, config):
    raw = study("NCT02576665")
    record = parse_study(raw)
    first_paragraph = record["abstract"].split("\n\n")[0]
    seed(db, [summarised_trial(record["extra"]["summary_markdown"], sentence="Not in the summary at all.")],
         source="ctgov")
    _, _, html, text, _ = preview_digest(db, config, "ann@example.org")
    assert "(including recurrent high grade glioma [rHGG]) or lymphoma." in html and "\\[" not in html
    assert "Toca FC will be administered orally" not in html  # the second paragraph is past the cut
    assert '<p style="margin:0;color:#6b7280;">&hellip;</p>' in html
    assert f"\n  {first_paragraph} …\n" in text
    assert "&ldquo;Not in the summary at all.&rdquo;" in html  # a quote from elsewhere is still shown


def test_the_quote_is_marked_in_the_summary_not_repeated(db, config):
    summary = ("A *phase 2* trial of efgartigimod. It enrols adults with SPS & GAD65 \\> 2000 IU/mL.\n\n"
               "Inclusion Criteria:\n\n* Age ≥18 years\n* Stiffness")
    seed(db, [summarised_trial(summary, sentence="It enrols adults with SPS & GAD65 > 2000 IU/mL.")], source="ctgov")
    _, _, html, text, _ = preview_digest(db, config, "ann@example.org")
    assert "&ldquo;It enrols" not in html and '"It enrols' not in text
    assert ('<p style="margin:0 0 6px;">A <em>phase 2</em> trial of efgartigimod. <span style="background:#dbeafe;">'
            "It enrols adults with SPS &amp; GAD65 &gt; 2000 IU/mL.</span></p>") in html
    assert ('<ul style="margin:0 0 6px;padding-left:20px;">\n<li>Age ≥18 years</li>\n'
            "<li>Stiffness</li>\n</ul>") in html
    assert "\n  A phase 2 trial of efgartigimod. It enrols adults with SPS & GAD65 > 2000 IU/mL.\n\n" in text
    assert "\n  Inclusion Criteria:\n\n  - Age ≥18 years\n  - Stiffness\n" in text


def test_a_quote_the_summary_cannot_mark_is_shown_as_a_quote(db, config):
    """A quote with emphasis inside it in the markdown cannot be marked as one piece: it is quoted."""
    summary = "A *phase 2* trial of efgartigimod in SPS.\n\n* Age ≥18 years"
    seed(db, [summarised_trial(summary, sentence="A phase 2 trial of efgartigimod in SPS.")], source="ctgov")
    _, _, html, text, _ = preview_digest(db, config, "ann@example.org")
    assert "&ldquo;A phase 2 trial of efgartigimod in SPS.&rdquo;" in html and "background:#dbeafe" not in html
    assert '\n  "A phase 2 trial of efgartigimod in SPS."\n' in text


def test_a_hostile_summary_is_text_in_both_parts(db, config):
    summary = ("<script>alert(1)</script> <img src=x onerror=alert(1)> [win](javascript:alert(1)) "
               "![pixel](https://tracker.example/p.gif) \u202eevil\u202c [register](https://example.org/r)")
    seed(db, [summarised_trial(summary, sentence="Elsewhere.")], source="ctgov")
    _, _, html, text, _ = preview_digest(db, config, "ann@example.org")
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "tracker.example" not in html
    assert '<a href="https://example.org/r">register</a>' in html
    assert "\u202e" not in html and "\u202e" not in text
    assert ("<script>alert(1)</script> <img src=x onerror=alert(1)> [win](javascript:alert(1)) pixel evil register"
            in text)


def test_an_issue_stored_before_summaries_renders_as_it_was(db, config):
    seed(db, [summarised_trial("A trial summary.", sentence="Elsewhere.")], source="ctgov")
    build_digests(db, config, now=NOW)
    data = json.loads(next(db.query("select data from digests where subscriber_id is null"))["data"])
    for section in [*data["sections"], {"items": data.get("trials") or []}]:
        for entry in section["items"]:
            for key in ("summary", "summary_md", "summary_more", "summary_has_sentence"):
                entry.pop(key, None)
    page = render_archive_page(data, config)
    assert "Efgartigimod in stiff person syndrome" in page and "&ldquo;Elsewhere.&rdquo;" in page
    assert "A trial summary." not in page


def test_the_web_issue_page_shows_a_trials_summary_as_the_digest_does(db, config, tmp_path):
    """The archive page on the web front: the summary's first blocks (formatted, an ellipsis after
    them) beside a quote it does not hold, as in the digest, with no inline style (the page's CSP)."""
    from bot.web.app import create_app
    from conftest import FakeEmbedder
    from web_support import web_config
    record = parse_study(study("NCT02576665"))
    seed(db, [summarised_trial(record["extra"]["summary_markdown"], sentence="Not in the summary at all.")],
         source="ctgov")
    build_digests(db, config, now=NOW)
    app = create_app(web_config(tmp_path), str(db.conn.execute("pragma database_list").fetchone()[2]),
                     embedder=FakeEmbedder())
    page = app.test_client().get("/issues/2026-11-23").get_data(as_text=True)
    assert '<div class="summary"><p>The purpose of this trial is to evaluate changes' in page
    assert "(including recurrent high grade glioma [rHGG]) or lymphoma." in page and "\\[" not in page
    assert "Toca FC will be administered orally" not in page
    assert '<p class="muted">&hellip;</p></div>' in page
    assert "<blockquote>Not in the summary at all.</blockquote>" in page
    assert "style=" not in page.split("<main")[1]
