"""Rendering: escaping of hostile records, http(s)-only links, neutralised control/bidi
characters, the multipart message, and the HTML as headless Chromium draws it."""

import email
from email import policy
import subprocess
from collections import Counter

import pytest

from bot.config import load_config
from bot.digest.builder import build_digests, preview_digest
from bot.digest.subscribers import add_subscriber
from conftest import chromium_path
from digest_support import NOW, paper, parts, png_pixels, seed

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def config(monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    return load_config()


def _hostile(db):
    """Records with markup, entities, a javascript: link, control characters and bidi overrides."""
    seed(db, [paper(1, 'Rituximab <img src=x onerror="alert(1)"> in SPS', abstract="<script>alert(1)</script> & <b>",
                    sentence="GAD65 < 2000 IU/mL & titres fell \u202eevil\u202c after IVIG\x07.",
                    authors=["O'Brien \u202eJ", "Li M"], journal="Brain & Spine <Reports>")])
    record, score = paper(2, "Feed entry with a script link")
    seed(db, [({**record, "pmid": None, "url": "javascript:alert(document.cookie)"}, {**score, "item_id": "feed:x"})],
         source="feed:journal")
    feed_id = list(db.query("select id from items where url like 'javascript%'"))[0]["id"]
    db.execute("update scores set item_id = ? where item_id = 'feed:x'", [feed_id])
    db.conn.commit()


def test_hostile_values_are_escaped_and_neutralised(db, config):
    _hostile(db)
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    _, subject, html, text, message = preview_digest(db, config, "ann@example.org")
    assert "<img" not in html and "<script" not in html and 'onerror="' not in html
    assert "Rituximab &lt;img src=x onerror=&#34;alert(1)&#34;&gt; in SPS" in html
    assert "Brain &amp; Spine &lt;Reports&gt;" in html and "GAD65 &lt; 2000 IU/mL &amp; titres" in html
    assert "javascript:" not in html.lower() and "javascript:" not in text.lower()
    assert "Feed entry with a script link" in html  # the item is shown, just not as a link
    for hidden in ("\u202e", "\u202c", "\x07"):
        assert hidden not in html and hidden not in text
    assert "O&#39;Brien J" in html and "titres fell evil after IVIG." in text
    parsed = email.message_from_bytes(message, policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative" and b"\r\n" in message and b"\n\n" not in message
    plain, rich = parts(parsed)
    assert plain.replace("\r\n", "\n") == text and rich == html  # the text part travels with CRLF
    assert "\n" not in subject and subject.startswith("SPS digest — 2 new papers")


def test_stored_digest_html_matches_a_fresh_render(db, config):
    seed(db, [paper(1, "A paper")])
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    build_digests(db, config)
    row = list(db.query("select html, text, subject from digests where subscriber_id = 1"))[0]
    assert "A paper" in row["html"] and "A paper" in row["text"]
    assert "unsubscribe" in row["text"].lower() and "token" not in row["subject"]


@pytest.mark.needs_chromium
def test_html_renders_non_blank_in_headless_chromium(db, config, tmp_path):
    chromium = chromium_path()
    _hostile(db)
    seed(db, [paper(3, "Diazepam and baclofen", themes={"symptomatic": 0.9})])
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names, name="Ann")
    _, _, html, _, _ = preview_digest(db, config, "ann@example.org")
    page = tmp_path / "digest.html"
    page.write_text(html, encoding="utf-8")
    shot = tmp_path / "digest.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=900,1400", page.as_uri()], check=True, capture_output=True, timeout=120)
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (900, 1400)
    colours = Counter(pixels)
    assert len(colours) > 50, "the screenshot is (nearly) one colour: nothing rendered"
    assert colours[(30, 58, 138)] > 5000, "the digest's header bar is missing"
    background, share = colours.most_common(1)[0][0], colours.most_common(1)[0][1] / len(pixels)
    assert share < 0.9, f"{share:.0%} of the screenshot is background {background}"


def test_every_section_renders_in_both_parts(db, config):
    from bot.digest.builder import Pool, build_digest_data
    from bot.digest.render import render_digest
    from digest_support import trial
    seed(db, [paper(1, "IVIG paper"), paper(2, "Trial results paper"), paper(3, "Retracted paper", date="2026-10-01"),
              trial("NCT01234567", "Efgartigimod in SPS", date="2025-01-01"), trial("NCT07654321", "New SPS trial")])
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    with db.atomic():
        db["links"].insert({"paper_id": "pmid:2", "trial_id": "nct:NCT01234567", "evidence": "registry_reference",
                            "detail": "RESULT", "created_at": NOW}, alter=True)
        db["trial_changes"].insert({"nct_id": "NCT01234567", "field": "overall_status", "old": "RECRUITING",
                                    "new": "COMPLETED", "detected_at": NOW})
        db["sent_items"].insert({"subscriber_id": 1, "item_id": "pmid:3", "digest_id": 0, "sent_at": NOW})
        db.execute("update items set pub_types = ? where id = 'pmid:3'", ['["Retracted Publication"]'])
    sub = list(db["subscribers"].rows)[0]
    data = build_digest_data(Pool(db, "2026-01-01"), config, sub, "2026-11-16T06:00:00+00:00", NOW, first=False)
    subject, html, text = render_digest(data, config, {"token": "1.2.x", "url": "https://sps.example.org/u?token=1.2.x",
                                                       "mailto": None, "mailto_address": None})
    assert subject == "SPS digest — 2 new papers, 1 new trial, 1 trial change, 1 correction notice (17–23 Nov 2026)"
    for heading in ("Immunomodulation", "Papers on tracked trials", "New clinical trials", "Changes in tracked trials",
                    "Notices about items you received earlier"):
        assert heading in html and heading.upper() in text.upper(), heading
    for line in ("This paper reports results of", "Status: Recruiting → Completed", "has been retracted"):
        assert line in text, line
    assert "This paper reports results of <a href=\"https://clinicaltrials.gov/study/NCT01234567\"" in html
    assert 'href="https://sps.example.org/u?token=1.2.x"' in html
    assert "Unsubscribe:\nhttps://sps.example.org/u?token=1.2.x\n" in text
