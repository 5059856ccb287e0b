"""The static web archive: one HTML page per public issue, an index and an Atom feed.

Public issues are the subscriber-agnostic digests (``digests.subscriber_id`` null) that
``build_digests`` stores each period; the archive re-renders them from their stored data, so
rebuilding the folder any time gives the same pages.
"""

from __future__ import annotations

import json
from pathlib import Path

import sqlite_utils

from bot.digest.entries import clean_text
from bot.digest.render import archive_link, covered_period, environment, render_archive_page, subject_for
from bot.store import now_iso
from bot.store import digests as store

FEED_NAME = "feed.atom"


def issue_filename(row: dict) -> str:
    return f"{row['period_end'][:10]}-{row['id']}.html"


def build_archive(db: sqlite_utils.Database, config, out_dir: str | Path) -> dict:
    """Write ``index.html``, ``feed.atom`` and one page per public issue into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = archive_link(config) or ""
    base = base.rstrip("/") + "/" if base else ""
    issues = []
    for row in store.public_digests(db):
        data = json.loads(row["data"]) if row.get("data") else None
        if not data:
            continue
        name = issue_filename(row)
        issue = archive_issue(row, data, config, name, (base + name) if base else name)
        (out / name).write_text(issue["html"], encoding="utf-8")
        issues.append(issue)
    env = environment()
    context = archive_context(config, issues, base, home=(base + "index.html") if base else "")
    (out / "index.html").write_text(env.get_template("archive_index.html").render(context), encoding="utf-8")
    (out / FEED_NAME).write_text(env.get_template("feed.atom").render(context), encoding="utf-8")
    return {"issues": len(issues), "dir": str(out), "index": str(out / "index.html"), "feed": str(out / FEED_NAME)}


def archive_issue(row: dict, data: dict, config, file: str, url: str) -> dict:
    """One public issue as the index and the feed list it (``file`` relative to ``base``)."""
    return {"id": row["id"], "file": file, "url": url, "title": subject_for(data),
            "updated": _atom_time(row["period_end"]), "period": covered_period(row["period_start"], row["period_end"]),
            "html": render_archive_page(data, config), "summary": _summary(data)}


def archive_context(config, issues: list[dict], base: str, home: str) -> dict:
    """What ``archive_index.html`` and ``feed.atom`` render; ``base`` ends with "/" (or is empty:
    relative links), ``home`` is the page the feed's alternate link names."""
    topic = clean_text(config.topic.name)
    slug = clean_text(config.topic.slug or "topic")
    return {"issues": issues, "topic": topic, "slug": slug.upper(), "base": base, "home": home,
            "feed": (base + FEED_NAME) if base else FEED_NAME,
            "updated": issues[0]["updated"] if issues else _atom_time(now_iso()),
            "feed_id": (base + FEED_NAME) if base else f"urn:spsbot:{slug}:archive"}


def render_feed(config, issues: list[dict], base: str, home: str) -> str:
    return environment().get_template("feed.atom").render(archive_context(config, issues, base, home))


def _atom_time(value: str) -> str:
    text = value.replace("+00:00", "Z")
    return text if text.endswith("Z") or "+" in text[10:] else text + "Z"


def _summary(data: dict) -> str:
    o = data["overview"]
    themes = ", ".join(f"{t['title']} {t['count']}" for t in o["themes"])
    return clean_text(f"{o['papers']} papers, {o['trials']} new trials, {o['changes']} trial changes. {themes}")
