"""The subscriber's whole journey in a real browser (Debian's Chromium, driven by Selenium through
Debian's chromedriver) against the real web front on waitress, with a real SMTP server:

sign up → the confirmation e-mail arrives → follow its link → confirm → the next digest reaches
the address → "not relevant" on an item → the vote is stored → change preferences → RFC 8058
one-click unsubscribe (as a mail client sends it) → no further digest.

The home and preferences pages are photographed at 390 px (a phone) and 1280 px and checked for
real rendering; ``SPSBOT_WRITE_SCREENSHOTS=1`` also writes them to docs/ for the README.
"""

from __future__ import annotations

import base64
import os
import shutil
import struct
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from bot.digest.builder import build_digests
from bot.digest.subscribers import add_subscriber
from bot.pipeline import run_weekly
from bot.store import open_db
from bot.web.app import create_app
from bot.web.mailer import SignupMailer
from bot.web.server import make_server, serve_in_thread, stop_server
from conftest import SmtpServer, free_port
from digest_support import paper, parts, png_array, seed
from web_support import links, web_config

NEEDS_CHROMEDRIVER = True  # conftest: this module drives Chromium through chromedriver
DOCS = Path(__file__).resolve().parents[1] / "docs"
README = DOCS.parent / "README.md"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAST_WEEK, MONDAY, TUESDAY = "2026-11-16T06:00:00+00:00", "2026-11-23T06:00:00+00:00", "2026-11-24T06:00:00+00:00"


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from conftest import chromedriver_path, chromium_path
    profile = tempfile.mkdtemp(prefix="spsbot-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_path()
    for flag in [*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900", "--hide-scrollbars"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver_path()), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait_for(condition, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _submit(driver, selector: str) -> None:
    """Click a form's button and wait until the next page has replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    for attempt in range(3):
        page = driver.find_element(By.TAG_NAME, "html")
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            break
        except (StaleElementReferenceException, WebDriverException) as e:
            # Chromium can swap the document between find and click ("Node with given id does not
            # belong to the document", seen once in CI): the click never happened, so find again.
            if attempt == 2 or not (isinstance(e, StaleElementReferenceException)
                                    or "does not belong to the document" in str(e)):
                raise
            time.sleep(0.2)

    def replaced(_driver) -> bool:
        try:
            return expected_conditions.staleness_of(page)(_driver)
        except WebDriverException as e:
            # The same swap seen from the old page: Chromium reports the node gone from the document
            # instead of stale (seen in CI under faketime) — the page has been replaced.
            if "does not belong to the document" in str(e):
                return True
            raise
    WebDriverWait(driver, 10).until(replaced)


def _shot(driver, width: int, name: str, tmp_path: Path) -> Path:
    """A screenshot at ``width`` px, checked to be a real page: the header bar, text, a white card,
    nothing wider than the screen. With SPSBOT_WRITE_SCREENSHOTS the whole page goes to docs/."""
    driver.set_window_size(width, 900)
    path = tmp_path / f"{name}-{width}.png"
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True})
    path.write_bytes(base64.b64decode(shot["data"]))
    image = png_array(path)
    assert image.shape[1] == width
    packed = (image[..., 0].astype(np.uint32) << 16) | (image[..., 1].astype(np.uint32) << 8) | image[..., 2]
    colours, counts = np.unique(packed, return_counts=True)
    assert len(colours) > 40, f"{name} at {width} px is (nearly) one colour: nothing rendered"
    assert (packed == 0x1E3A8A).sum() > 20 * width, f"{name} at {width} px has no header bar"
    assert (packed == 0xFFFFFF).sum() > 0.1 * packed.size, f"{name} at {width} px has no white card"
    assert counts.max() / packed.size < 0.85, f"{name} at {width} px is mostly one colour"
    assert driver.execute_script("return document.documentElement.scrollWidth") <= width  # no sideways scroll
    if os.environ.get("SPSBOT_WRITE_SCREENSHOTS"):
        height = min(int(driver.execute_script("return document.documentElement.scrollHeight")), 2400)
        chrome = 900 - int(driver.execute_script("return window.innerHeight"))  # the window is taller than the page
        driver.set_window_size(width, height + chrome)
        driver.save_screenshot(str(DOCS / f"web-{name}-{width}.png"))
    driver.set_window_size(1280, 900)
    return path


@contextmanager
def _site(tmp_path, monkeypatch):
    """(smtp server, config, database path, database, port, base URL) for a journey on Monday."""
    monkeypatch.setenv("SPSBOT_SECRET", "browser-secret-0123456789abcdef-01234567")
    monkeypatch.setenv("SPSBOT_NOW", MONDAY)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with SmtpServer() as smtp:
        config = web_config(tmp_path, f'base_url = "{base}"\n', smtp_url=smtp.url)
        path = tmp_path / "journey.db"
        yield smtp, config, path, open_db(path), port, base


@pytest.mark.needs_chromium
def test_sign_up_confirm_receive_vote_manage_and_leave_in_a_browser(tmp_path, monkeypatch, browser):
    from selenium.webdriver.common.by import By

    with _site(tmp_path, monkeypatch) as (smtp, config, path, db, port, base):
        # dated the day of the run: the daily control subscriber's first digest covers that day
        seed(db, [paper(1, "Rituximab in refractory stiff person syndrome", date="2026-11-23"),
                  paper(2, "Intrathecal baclofen for stiffness", date="2026-11-19",
                        themes={"symptomatic": 0.9})])
        add_subscriber(db, "control@example.org", valid_themes=config.theme_names, frequency="daily")
        seed(db, [paper(4, "Stiff person syndrome with anti-GAD65 antibodies: a case series", date="2026-11-12")],
             now=LAST_WEEK)
        build_digests(db, config, now=LAST_WEEK)  # last week's public issue, for the home page's archive
        mailer = SignupMailer(str(path), config, base, interval=30).start()
        server = make_server(create_app(config, str(path), wake_mailer=mailer.wake), "127.0.0.1", port, config.web)
        serve_in_thread(server)
        try:
            # the home page, and signing up with the form
            browser.get(base + "/")
            assert "Stiff Person Syndrome" in browser.title
            assert browser.find_element(By.CSS_SELECTOR, "ul.issues a").text == "10–16 Nov 2026"
            _shot(browser, 390, "home", tmp_path)
            _shot(browser, 1280, "home", tmp_path)
            browser.find_element(By.ID, "email").send_keys("pat@example.org")
            browser.find_element(By.ID, "name").send_keys("Pat")
            _submit(browser, "#subscribe button[type=submit]")
            assert "Check your inbox" in browser.find_element(By.TAG_NAME, "h1").text

            # the confirmation e-mail (no name: nothing typed is mailed before the address confirms),
            # its link, the button
            confirmation = _wait_for(lambda: [m for m in smtp.messages if m["To"] == "pat@example.org"])[0]
            browser.get(links(parts(confirmation)[0], "/confirm")[0])
            assert db.execute("select count(*) from subscribers where email = 'pat@example.org'").fetchone()[0] == 0
            _submit(browser, "form button.primary")
            assert "You are subscribed" in browser.find_element(By.TAG_NAME, "h1").text

            # the next weekly run reaches the address
            result = run_weekly(db, config, fetch=False, rank=False)
            assert result.sent == 2
            digest = next(m for m in smtp.messages if m["To"] == "Pat <pat@example.org>" and "digest —" in m["Subject"])
            text, html = parts(digest)
            assert "Rituximab in refractory stiff person syndrome" in html

            # "not relevant" on the first item: a page with two buttons, and the vote stored
            browser.get(links(html, "/feedback")[1].replace("&amp;", "&"))  # [0] relevant, [1] not relevant
            assert "vote=irrelevant" in browser.current_url
            assert browser.find_element(By.CSS_SELECTOR, "button[value=relevant]").is_displayed()
            _submit(browser, "button[value=irrelevant]")
            assert "Recorded: Not relevant" in browser.find_element(By.CLASS_NAME, "notice").text
            pat = db.execute("select id from subscribers where email = 'pat@example.org'").fetchone()[0]
            assert db.execute("select subscriber_id, vote from votes").fetchall() == [(pat, "irrelevant")]

            # preferences: two themes, every day, at most 5 items
            browser.get(links(text, "/preferences")[0])
            _shot(browser, 390, "preferences", tmp_path)
            _shot(browser, 1280, "preferences", tmp_path)
            for box in browser.find_elements(By.CSS_SELECTOR, "input[name=themes]"):
                if (box.get_attribute("value") in ("immunomodulation", "symptomatic")) != box.is_selected():
                    box.click()
            browser.find_element(By.CSS_SELECTOR, "input[name=frequency][value=daily]").click()
            limit = browser.find_element(By.ID, "max_items")
            limit.clear()
            limit.send_keys("5")
            _submit(browser, "form.stack button.primary")
            assert "Your preferences are saved." in browser.find_element(By.CLASS_NAME, "notice").text
            assert db.execute("select themes, frequency, max_items from subscribers where id = ?", [pat]).fetchone() \
                == ('["immunomodulation", "symptomatic"]', "daily", 5)

            # one-click unsubscribe, as a mail client does it (RFC 8058: POST to the header's URL)
            assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            target = next(u.strip("<>") for u in digest["List-Unsubscribe"].split(", ") if u.startswith("<http"))
            answer = urllib.request.urlopen(urllib.request.Request(
                target, data=b"List-Unsubscribe=One-Click", method="POST"), timeout=10)
            assert answer.status == 200
            browser.get(target)
            assert "is not subscribed" in browser.find_element(By.CSS_SELECTOR, "section.card").text

            # the next day's run: the control subscriber gets a digest, Pat none
            monkeypatch.setenv("SPSBOT_NOW", TUESDAY)
            seed(db, [paper(3, "Stiff person syndrome registry update", date="2026-11-24")], now=TUESDAY)
            before = len(smtp.messages)
            assert run_weekly(db, config, fetch=False, rank=False).sent == 1
            assert [m["To"] for m in smtp.messages[before:]] == ["control@example.org"]
        finally:
            stop_server(server)
            mailer.stop()
            db.close()


PATIENT_SHOTS = ("digest-plain", "search", "link-problem")


@pytest.mark.needs_chromium
def test_a_patient_signs_up_in_plain_words_reads_searches_and_leaves_from_a_damaged_link(tmp_path, monkeypatch,
                                                                                         browser):
    """Issue 24: sign up in plain style, confirm, read the plain digest (abbreviations spelled out,
    trial status in words), ask the search a question and find the exercise paper first with its
    sentence marked, open a cut unsubscribe link and leave through the form it offers."""
    from selenium.webdriver.common.by import By

    from bot.search.hybrid import search as hybrid_search
    from digest_support import trial
    with _site(tmp_path, monkeypatch) as (smtp, config, path, db, port, base):
        seed(db, [paper(1, "IVIG in stiff person syndrome: a cohort", date="2026-11-22",
                        sentence="Most patients treated with IVIG walked more easily."),
                  paper(2, "Exercise therapy in stiff person syndrome: a pilot study", date="2026-11-20",
                        themes={"multidisciplinary": 0.9},
                        abstract="A supervised home exercise programme eased stiffness in eight of ten patients.",
                        sentence="A supervised home exercise programme eased stiffness in eight of ten patients."),
                  paper(3, "Diazepam for stiffness and spasms", date="2026-11-19", themes={"symptomatic": 0.9},
                        abstract="Stiffness and spasms improved with diazepam; stiffness returned at lower doses.")])
        withdrawn, score = trial("NCT00000001", "Efgartigimod in stiff person syndrome", status="WITHDRAWN")
        recruiting, score2 = trial("NCT00000002", "Inebilizumab in stiff person syndrome", status="RECRUITING")
        recruiting["extra"].update(countries=["France", "United States"], locations_count=4)
        seed(db, [(withdrawn, score), (recruiting, score2)], source="ctgov")
        app = create_app(config, str(path), wake_mailer=None)
        # the real model, loaded and the items embedded before the browser asks (a page waits 20 s at most)
        hybrid_search(db, "stiffness", embedder=app.extensions["spsbot"].search_embedder())
        mailer = SignupMailer(str(path), config, base, interval=30).start()
        app.extensions["spsbot"].wake_mailer = mailer.wake
        server = make_server(app, "127.0.0.1", port, config.web)
        serve_in_thread(server)
        try:
            # sign up in plain words
            browser.get(base + "/")
            assert "Treatments that calm the immune system" in browser.find_element(By.ID, "subscribe").text
            browser.find_element(By.ID, "email").send_keys("pat@example.org")
            browser.find_element(By.CSS_SELECTOR, "input[name=style][value=plain]").click()
            _submit(browser, "#subscribe button[type=submit]")
            confirmation = _wait_for(lambda: [m for m in smtp.messages if m["To"] == "pat@example.org"])[0]
            browser.get(links(parts(confirmation)[0], "/confirm")[0])
            _submit(browser, "form button.primary")
            assert "You are subscribed" in browser.find_element(By.TAG_NAME, "h1").text

            # the plain digest, read in the browser
            assert run_weekly(db, config, fetch=False, rank=False).sent == 1
            digest = next(m for m in smtp.messages if m["To"] == "pat@example.org" and "digest —" in m["Subject"])
            text, html = parts(digest)
            page = tmp_path / "digest.html"
            page.write_text(html, encoding="utf-8")
            browser.get(page.as_uri())
            body = browser.find_element(By.TAG_NAME, "body").text
            assert "Intravenous immunoglobulin (IVIG) in stiff person syndrome: a cohort" in body
            assert "Recruiting — looking for participants in France, United States (4 sites)" in body
            assert "Withdrawn — stopped before anyone took part" in body
            assert body.index("Inebilizumab") < body.index("Efgartigimod")  # the trial one could join first
            _shot(browser, 390, "digest-plain", tmp_path)
            _shot(browser, 1280, "digest-plain", tmp_path)

            # a question to the search
            browser.get(base + "/")
            browser.find_element(By.ID, "q").send_keys("can exercise help my stiffness")
            _submit(browser, "form.inline button")
            first = browser.find_element(By.CSS_SELECTOR, "ol.results li")
            assert first.find_element(By.CSS_SELECTOR, ".title").text == \
                "Exercise therapy in stiff person syndrome: a pilot study"
            marks = [m.text.lower() for m in first.find_elements(By.CSS_SELECTOR, ".snippet mark")]
            assert "exercise" in marks and "home" in first.find_element(By.CSS_SELECTOR, ".snippet").text
            _shot(browser, 390, "search", tmp_path)
            _shot(browser, 1280, "search", tmp_path)

            # an unsubscribe link cut by a mail program: what happened, and a way out
            unsubscribe = links(text, "/unsubscribe")[0]
            browser.get(unsubscribe[:-12])
            assert "This link does not work" in browser.find_element(By.TAG_NAME, "h1").text
            _shot(browser, 390, "link-problem", tmp_path)
            _shot(browser, 1280, "link-problem", tmp_path)
            browser.find_element(By.ID, "email").send_keys("pat@example.org")
            _submit(browser, "#fresh-link button.primary")
            assert "Check your inbox" in browser.find_element(By.TAG_NAME, "h1").text
            manage = _wait_for(lambda: [m for m in smtp.messages if m["To"] == "pat@example.org"
                                        and m["Subject"] == "Your SPS digest subscription"])[0]
            browser.get(links(parts(manage)[0], "/preferences")[0])
            assert browser.find_element(By.CSS_SELECTOR, "input[name=style][value=plain]").is_selected()
            _submit(browser, "button.danger")
            assert "You are unsubscribed." in browser.find_element(By.CLASS_NAME, "notice").text
            assert db.execute("select status, style from subscribers where email = 'pat@example.org'").fetchone() \
                == ("unsubscribed", "plain")
        finally:
            stop_server(server)
            mailer.stop()
            db.close()


def test_committed_screenshots_are_there_for_the_readme():
    """The screenshots the README shows (written by the journey above with SPSBOT_WRITE_SCREENSHOTS=1):
    PNGs of the right width, too large to be blank (an empty page compresses to a few kB)."""
    for name in ("home", "preferences", *PATIENT_SHOTS):
        for width in (390, 1280):
            data = (DOCS / f"web-{name}-{width}.png").read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">I", data[16:20])[0] == width
            assert len(data) > 40_000, f"web-{name}-{width}.png looks blank"
            assert f"docs/web-{name}-{width}.png" in README.read_text(encoding="utf-8")
