"""Honest wording in every mail the project sends: the first digest's sentence matches the period
in its header, the public issue never speaks to "you", "one click" only where it is one click, and
every link in a text part stands alone on its line (a mail client links a whole run of text)."""

import email
import re
from email import policy

import pytest

from bot.config import load_config
from bot.digest.builder import build_digests
from bot.digest.confirmations import signup_message
from bot.digest.subscribers import add_subscriber
from bot.store import subscribers as subscriber_store
from digest_support import NOW, paper, seed, trial

NEEDS_CHROMEDRIVER = True  # conftest: the phone-width test drives Chromium through chromedriver
URL = re.compile(r"(?:https?://|mailto:)\S+")


def _config(tmp_path, extra=""):
    path = tmp_path / "profile.toml"
    path.write_text('[web]\nbase_url = "https://sps.example.org"\n'
                    '[digest]\narchive_url = "https://sps.example.org/archive/"\n' + extra, encoding="utf-8")
    return load_config(path)


def links_alone(text: str) -> list[str]:
    """Every line holding a URL with anything else on it (should be none)."""
    bad = []
    for line in text.splitlines():
        found = URL.findall(line)
        if found and line.strip() not in found:
            bad.append(line)
    return bad


def _text_part(message: bytes) -> str:
    parsed = email.message_from_bytes(message, policy=policy.default)
    return parsed.get_body(preferencelist=("plain",)).get_content()


@pytest.fixture
def store(db, monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    seed(db, [paper(1, "IVIG in stiff person syndrome", date="2026-11-01"),
              paper(2, "A paper", date="2026-11-20", extra={"volume": "3"}),
              trial("NCT01234567", "A trial", status="WITHDRAWN")])
    return db


def test_every_link_of_every_text_part_is_alone_on_its_line(store, tmp_path):
    for extra in ("", '[email]\nunsubscribe_mailto = "leave@example.org"\n'):
        config = _config(tmp_path, extra)
        if extra:  # the mailto footer, without a web front
            config.sections["web"] = {}
        add_subscriber(store, f"ann{len(extra)}@example.org", valid_themes=config.theme_names)
        built = build_digests(store, config, now=NOW, public=False)
        text = store.execute("select text from digests where id = ?", [built.built[-1]]).fetchone()[0]
        assert URL.search(text) and "unsubscribe" in text.lower()
        assert links_alone(text) == [], links_alone(text)
    config = _config(tmp_path)
    for kind, address in (("confirm", "new@example.org"), ("manage", "ann0@example.org")):
        signup_id = subscriber_store.record_signup(store, address, name="Ann", themes=None, kind=kind,
                                                   mail_status="pending")
        text = _text_part(signup_message(store, config, subscriber_store.get_signup(store, signup_id),
                                         "https://sps.example.org"))
        assert "https://sps.example.org/" in text
        assert links_alone(text) == [], (kind, links_alone(text))


def test_the_check_catches_a_run_of_two_links():
    assert links_alone("Past issues: https://a.example/#archive and https://a.example/search\n"
                       "  https://b.example/\nsee https://c.example/.\n") == [
        "Past issues: https://a.example/#archive and https://a.example/search", "see https://c.example/."]


def test_first_digest_of_a_monthly_subscriber_says_the_period_of_its_header(store, tmp_path):
    config = _config(tmp_path)
    add_subscriber(store, "month@example.org", valid_themes=config.theme_names, frequency="monthly")
    built = build_digests(store, config, now=NOW)
    text, html = store.execute("select text, html from digests where id = ?", [built.built[0]]).fetchone()
    assert text.splitlines()[0].endswith("25 Oct – 23 Nov 2026")
    assert "This first digest covers 25 Oct – 23 Nov 2026 only." in text
    assert "This first digest covers 25 Oct – 23 Nov 2026 only" in html
    assert "7 days" not in text + html
    # the public issue, the same week, speaks to nobody in particular
    public = store.execute("select text, html from digests where id = ?", [built.public]).fetchone()
    assert built.public and "first digest" not in public[0] + public[1]


def test_one_click_is_said_only_where_it_is_one_click(store, tmp_path):
    config = _config(tmp_path)
    add_subscriber(store, "ann@example.org", valid_themes=config.theme_names)
    built = build_digests(store, config, now=NOW, public=False)
    text, html = store.execute("select text, html from digests where id = ?", [built.built[0]]).fetchone()
    assert "one click" not in (text + html).lower() and ">Unsubscribe</a>" in html
    signup_id = subscriber_store.record_signup(store, "new@example.org", name=None, themes=None, kind="confirm",
                                               mail_status="pending")
    message = email.message_from_bytes(signup_message(store, config, subscriber_store.get_signup(store, signup_id),
                                                       "https://sps.example.org"), policy=policy.default)
    confirm_html = message.get_body(preferencelist=("html",)).get_content()
    assert "press the button there" in confirm_html and "Open the confirmation page" in confirm_html


@pytest.mark.needs_chromium
def test_the_mailto_footer_digest_fits_a_phone(store, tmp_path, monkeypatch):
    """The demo's kind of digest (no web front: the mailto footer with its long token) in Chromium
    emulating a 390 px phone: nothing wider than the screen (it was 430 px)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from bot.digest.builder import preview_digest
    from conftest import chromedriver_path, chromium_path
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    _, _, html, _, _ = preview_digest(store, load_config(), "a.very.long.address.of.a.carer@example.org")
    assert re.search(r"&ldquo;unsubscribe \d+\.\S{40,}&rdquo;", html)  # the signed token, in full
    page = tmp_path / "digest.html"
    page.write_text(html, encoding="utf-8")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_path()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver_path()), options=options)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 390, "height": 800, "deviceScaleFactor": 1, "mobile": True})
        driver.get(page.as_uri())
        width = driver.execute_script("return document.documentElement.scrollWidth")
    finally:
        driver.quit()
    assert width <= 390, f"the digest lays out {width} px wide at 390 px"


def test_a_first_digest_holds_what_its_header_period_says(db, tmp_path, monkeypatch):
    """Headed 17–23 Nov, a first weekly digest holds the paper dated 17 Nov, not the one dated
    16 Nov (the period starts at 16 Nov 06:00, a day the previous week's digest covered)."""
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    seed(db, [paper(1, "A paper dated the day before the period", date="2026-11-16"),
              paper(2, "A paper dated the first day of the period", date="2026-11-17")])
    config = _config(tmp_path)
    add_subscriber(db, "week@example.org", valid_themes=config.theme_names)
    built = build_digests(db, config, now=NOW)
    for digest_id in (built.built[0], built.public):
        subject, text, html = db.execute("select subject, text, html from digests where id = ?",
                                         [digest_id]).fetchone()
        assert subject.endswith("(17–23 Nov 2026)") and text.splitlines()[0].endswith("17–23 Nov 2026")
        assert "the first day of the period" in text + html
        assert "the day before the period" not in text + html


def test_a_daily_digest_names_its_one_day(db, tmp_path, monkeypatch):
    """A daily digest run on 23 Nov covers 23 Nov: it says so ('23–23 Nov' before), and holds what
    is dated that day, not the day before."""
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    seed(db, [paper(1, "A paper dated the day before", date="2026-11-22"),
              paper(2, "A paper dated the day of the run", date="2026-11-23")])
    config = _config(tmp_path)
    add_subscriber(db, "day@example.org", valid_themes=config.theme_names, frequency="daily")
    built = build_digests(db, config, now=NOW)
    subject, text = db.execute("select subject, text from digests where id = ?", [built.built[0]]).fetchone()
    assert subject.endswith("(23 Nov 2026)") and "23–23" not in text
    assert "the day of the run" in text and "the day before" not in text
