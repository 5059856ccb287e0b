"""Digests hold what the subscriber was not sent: outages delay items, never drop them; the cap
says how many more there were and carries them over; a failed source is named in one line."""

from __future__ import annotations

import json

import pytest

from bot.config import load_config
from bot.digest.builder import build_digests
from bot.digest.render import render_digest
from bot.digest.subscribers import add_subscriber
from bot.store import finish_run, start_run
from digest_support import paper, seed

WEEKS = ["2026-11-01", "2026-11-08", "2026-11-15", "2026-11-22", "2026-11-29"]


def at(day: str) -> str:
    return f"{day}T06:00:00+00:00"


@pytest.fixture
def config():
    return load_config(env={})


def deliver_all(db) -> None:
    """What the send step does once the server accepted every message."""
    with db.atomic():
        db.execute("update deliveries set status = 'sent', sent_at = created_at where status = 'pending'")
        db.execute("update sent_items set sent_at = coalesce(sent_at, '2026-01-01') ")


def fetch_run(db, monkeypatch, day: str, status: str, source: str = "pubmed") -> None:
    monkeypatch.setenv("SPSBOT_NOW", at(day))
    finish_run(db, start_run(db, "fetch", source), status, error=None if status == "ok" else "SourceError: HTTP 503")


def digests_of(db, email: str) -> list[dict]:
    return [json.loads(r["data"]) for r in db.query(
        "select d.data from digests d join subscribers s on s.id = d.subscriber_id where s.email = ? order by d.id",
        [email])]


def titles(data: dict) -> list[str]:
    return sorted(e["title"] for s in data["sections"] for e in s["items"])


def week(db, config, monkeypatch, day: str) -> None:
    monkeypatch.setenv("SPSBOT_NOW", at(day))
    build_digests(db, config, now=at(day))
    deliver_all(db)


def test_a_paper_fetched_after_a_two_week_outage_reaches_the_next_digest(db, config, monkeypatch):
    """PubMed down from 8 to 15 Nov; a paper it created on 6 Nov is fetched on 22 Nov. Its dates
    are outside the 22 Nov digest's window, but it was never sent: it goes out then."""
    seed(db, [paper(1, "Before the outage", date="2026-10-30")], now=at(WEEKS[0]))
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    week(db, config, monkeypatch, WEEKS[0])
    for day in WEEKS[1:3]:
        fetch_run(db, monkeypatch, day, "failed")
        seed(db, [paper(100 + int(day[-2:]), f"Something else on {day}", date=day)], source="feeds", now=at(day))
        week(db, config, monkeypatch, day)
    fetch_run(db, monkeypatch, WEEKS[3], "ok")
    seed(db, [paper(2, "Created during the outage", date="2026-11-06")], now=at(WEEKS[3]))
    week(db, config, monkeypatch, WEEKS[3])
    sent = [titles(d) for d in digests_of(db, "ann@example.org")]
    assert sent[-1] == ["Created during the outage"]
    assert sum(t.count("Created during the outage") for t in sent) == 1


def test_a_failed_source_is_named_in_one_line_until_it_catches_up(db, config, monkeypatch):
    seed(db, [paper(1, "First", date="2026-10-30")], now=at(WEEKS[0]))
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    week(db, config, monkeypatch, WEEKS[0])
    fetch_run(db, monkeypatch, "2026-11-04", "ok", source="clinicaltrials")
    fetch_run(db, monkeypatch, "2026-11-07", "failed")
    fetch_run(db, monkeypatch, WEEKS[1], "failed")
    seed(db, [paper(2, "From a feed", date="2026-11-07")], source="feeds", now=at(WEEKS[1]))
    week(db, config, monkeypatch, WEEKS[1])
    data = digests_of(db, "ann@example.org")[-1]
    line = "PubMed could not be reached on 7 Nov 2026 and 8 Nov 2026; its new papers will follow."
    assert data["notes"] == [line]
    subject, html, text = render_digest(data, config, None)
    assert f"Note: {line}" in text and line in html
    # PubMed succeeds again: the next digest has nothing to excuse
    fetch_run(db, monkeypatch, WEEKS[2], "ok")
    seed(db, [paper(3, "Caught up", date="2026-11-06")], now=at(WEEKS[2]))
    week(db, config, monkeypatch, WEEKS[2])
    assert digests_of(db, "ann@example.org")[-1]["notes"] == []


def test_over_the_cap_the_digest_says_how_many_more_and_sends_them_next(db, config, monkeypatch):
    seed(db, [paper(i, f"Paper {i}", date="2026-10-30", relevance=0.5 + i / 100) for i in range(1, 6)],
         now=at(WEEKS[0]))
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names, max_items=2)
    for day in WEEKS[:4]:
        week(db, config, monkeypatch, day)
    sent = digests_of(db, "ann@example.org")
    assert [titles(d) for d in sent] == [["Paper 4", "Paper 5"], ["Paper 2", "Paper 3"], ["Paper 1"]]
    assert [d["more"] for d in sent] == [3, 1, 0]
    assert sent[0]["notes"] == ["3 more items qualified for this digest than your limit of 2; the best of them "
                                "come first in your next digest."]
    _, _, text = render_digest(sent[0], config, None)
    assert "Note: 3 more items qualified" in text
    counts = list(db.query("select item_id, count(*) as n from sent_items group by item_id"))
    assert len(counts) == 5 and all(r["n"] == 1 for r in counts)


def test_the_back_catalogue_stays_out_of_every_digest_after_a_backfill(db, config, monkeypatch):
    seed(db, [paper(1, "This week", date="2026-10-29"), paper(2, "Back catalogue", date="2019-03-01"),
              paper(3, "Last year", date="2025-11-01")], now=at(WEEKS[0]))
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names)
    for day in WEEKS[:3]:
        seed(db, [paper(10 + int(day[-2:]), f"New on {day}", date=day)], now=at(day))
        week(db, config, monkeypatch, day)
    sent = [titles(d) for d in digests_of(db, "ann@example.org")]
    assert sent == [["New on 2026-11-01", "This week"], ["New on 2026-11-08"], ["New on 2026-11-15"]]


def test_items_older_than_max_age_are_no_longer_mailed(db, config, monkeypatch):
    config.sections["digest"]["max_age_days"] = 10
    seed(db, [paper(1, "Best", date="2026-10-30", relevance=0.99), paper(2, "Second", date="2026-10-30", relevance=0.9),
              paper(3, "Third", date="2026-10-30", relevance=0.8)], now=at(WEEKS[0]))
    add_subscriber(db, "ann@example.org", valid_themes=config.theme_names, max_items=1)
    for day in WEEKS[:3]:
        week(db, config, monkeypatch, day)
    sent = digests_of(db, "ann@example.org")
    # each digest said how many more there were; 14 days on, the last one is past max_age_days
    assert [titles(d) for d in sent] == [["Best"], ["Second"]] and [d["more"] for d in sent] == [2, 1]
