"""Build digests: for each due subscriber, what the store holds that they have not been sent.

A digest covers ``period_start`` (the previous digest's end, or ``period_days`` ago for the
first one) to now, but what it holds is not chosen by dates inside that window (a source outage
would then lose the outage's papers): it holds every relevant item, trial change and notice the
subscriber has not been sent (``bot.digest.schedule.news_for``; when a digest is due is
``bot.digest.schedule.digest_window``):

- the **first** digest: items whose create, Entrez or publication date falls in the last
  ``period_days`` (a backfill of the back catalogue goes to the archive, never into inboxes);
- later digests: also every item first stored after their first digest, whatever its dates
  (an outage's papers when the source catches up, old citations indexed late), and anything that
  qualified earlier but did not fit under ``max_items``;
- nothing first stored more than ``[digest] max_age_days`` (60) ago.

Over the cap, the digest says how many more there were (they follow in the next digest); when a
source failed since the subscriber's last digest and has not caught up, it says so in one line.
Every key it holds is reserved in ``sent_items`` when it is stored, so nothing reaches the same
subscriber twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from email.utils import make_msgid, parseaddr
from pathlib import Path

import sqlite_utils
from tqdm import tqdm

from bot.clock import iso_before
from bot.digest.entries import (CORRECTION_IN, CORRECTION_OF, clean_text, display_date, humanize_value,
                                item_dates, item_links, make_entry, safe_url)
from bot.digest.plain import is_open, plain_entry, spell_out, status_words
from bot.digest.render import build_message, render_digest, subscriber_links, theme_titles, unsubscribe_info
from bot.digest.schedule import DAY, digest_window, first_day, is_news, max_age_days, news_for, period_days
from bot.links import trial_url
from bot.store import loads, now_iso
from bot.store import digests as store
from bot.store import subscribers as subscriber_store
from bot.store import trials as trial_store

log = logging.getLogger(__name__)

KEEP_BODIES_DAYS = 56  # rendered e-mails kept this long (for support questions), then pruned
FIELD_LABELS = {
    "overall_status": "Status", "status": "Status", "enrollment": "Enrollment", "why_stopped": "Why stopped",
    "start_date": "Start date", "primary_completion_date": "Primary completion", "completion_date": "Completion",
    "locations_count": "Sites", "arms_interventions": "Arms/interventions", "interventions": "Interventions",
    "phases": "Phase", "phase": "Phase", "results_first_posted": "Results", "has_results": "Results",
    "last_known_status": "Last known status", "enrollment_type": "Enrollment type", "arms": "Arms",
}


@dataclass
class BuildResult:
    built: list[int] = field(default_factory=list)         # digest ids queued for sending
    empty: int = 0                                          # due, nothing new, not sent
    skipped: int = 0                                        # not due, or a delivery still pending
    public: int | None = None                               # the public archive issue built now


# A source's name and what its outage delays, for the one line a digest carries about it.
OUTAGE_WORDS = {"pubmed": ("PubMed", "its new papers will follow"),
                "clinicaltrials": ("ClinicalTrials.gov", "its trial updates will follow"),
                "feeds": ("Some feeds", "their new items will follow")}


def outage_notes(runs: list[dict], since: str) -> list[str]:
    """One line per source whose fetches failed since ``since`` and have not succeeded since:
    "PubMed could not be reached on 14 Nov 2026; its new papers will follow."."""
    failing: dict[str, list[dict]] = {}
    for run in runs:
        if run["started"] < since:
            continue
        if run["status"] in ("failed", "partial"):
            failing.setdefault(run["source"], []).append(run)
        elif run["status"] in ("ok", "nothing_new"):
            failing[run["source"]] = []  # caught up: its items are in the store
    notes = []
    for source, failed in failing.items():
        if not failed:
            continue
        days = list(dict.fromkeys(display_date(r["started"][:10]) for r in failed))
        when = days[0] if len(days) == 1 else ", ".join(days[:-1]) + " and " + days[-1]
        name, follow = OUTAGE_WORDS.get(source, (clean_text(source), "its new items will follow"))
        verb = "could not be reached" if any(r["status"] == "failed" for r in failed) else "could only be read in part"
        notes.append(f"{name} {verb} on {when}; {follow}.")
    return notes


def overflow_note(more: int, max_items: int, config) -> str:
    """"3 more items qualified…": the cap never drops anything without saying so."""
    archive = safe_url((config.digest or {}).get("archive_url") or "")
    return (f"{more} more {'item' if more == 1 else 'items'} qualified for this digest than your limit of "
            f"{max_items}; the best of them come first in your next digest"
            + (f", and every issue is in the archive: {archive}" if archive else "") + ".")


# --- loading candidates --------------------------------------------------------------------

class Pool:
    """Everything the builder reads, loaded once per build run and shared by all subscribers."""

    def __init__(self, db: sqlite_utils.Database, since: str):
        """``since``: the oldest first_seen (and change) any digest of this run may hold."""
        self.db = db
        self.items = store.digest_candidates(db, since)
        self.runs = store.fetch_runs_since(db, since)
        for item in self.items:
            item["_dates"] = item_dates(item)
            item["_labels"] = loads(item.get("labels"), []) or []
            item["_scores"] = loads(item.get("theme_scores"), {}) or {}
        self.trial_ids = trial_store.stored_trial_ids(db)
        # Notices (errata, retraction notices) are rarely scored relevant themselves: read apart.
        self.notice_items = store.correction_notices(db, since)
        self.changes = trial_store.change_events_since(db, since[:10])
        self.links: dict[str, list[str]] = {}
        for paper_id, trial_id, evidence, extra in trial_store.paper_trial_links(db):
            self.links.setdefault(paper_id, []).append((_trial_key(trial_id), f"{evidence or ''}:{extra or ''}"))
        self._rows: dict[str, dict] = {}
        self._entries: dict[tuple, dict] = {}

    def entry(self, item: dict, theme: str | None = None, glossary: dict | None = None) -> dict:
        """The display entry of an item (cached: a thousand subscribers share the same items);
        with ``glossary`` (a plain-style digest), in the plain register (``bot.digest.plain``)."""
        key = (item["id"], theme, glossary is not None)
        if key not in self._entries:
            clinical = self.entry(item, theme) if glossary is not None else make_entry(item, theme)
            self._entries[key] = plain_entry(clinical, item, glossary) if glossary is not None else clinical
        return self._entries[key]

    def item(self, item_id: str) -> dict | None:
        if item_id not in self._rows:
            self._rows[item_id] = store.item_with_score(self.db, item_id)
        return self._rows[item_id]


def _trial_key(trial_id: str) -> str:
    trial_id = (trial_id or "").strip()
    return trial_id if trial_id.startswith("nct:") else f"nct:{trial_id.upper()}"


# --- building one digest -------------------------------------------------------------------

def build_digest_data(pool: Pool, config, subscriber: dict | None, period_start: str, now: str,
                      first: bool, news: dict | None = None) -> dict:
    """The digest for one subscriber (``None`` = public issue) as a JSON-able dict; not stored.

    ``news``: what they may be sent (``news_for``; computed here when not given).
    """
    themes = loads((subscriber or {}).get("themes")) or None
    max_items = int((subscriber or {}).get("max_items") or (config.digest or {}).get("max_items") or 20)
    if subscriber is None:
        max_items = 200
    subscriber_id = subscriber["id"] if subscriber else None
    sent = store.sent_keys(pool.db, subscriber_id)
    news = news or news_for(pool.db, subscriber_id, config, now, period_start)
    wanted_themes = themes or config.theme_names
    start_day = first_day(news["start"])  # the first day its header names
    # the plain register (for patients and carers) spells out the profile's glossary
    glossary = dict(config.glossary) if (subscriber or {}).get("style") == "plain" else None

    def wanted(item) -> bool:
        if themes is None or item.get("unscored"):
            return True
        return bool(set(item["_labels"]) & set(themes))

    qualified = [i for i in pool.items if i["id"] not in sent and is_news(i, news, now) and wanted(i)]
    qualified.sort(key=lambda i: (-(i.get("relevance") or 0), i["id"]))
    fresh = qualified[:max_items]
    more = len(qualified) - len(fresh)

    papers = [i for i in fresh if i.get("kind") != "trial"]
    linked = [i for i in papers if any(t in pool.trial_ids for t, _ in pool.links.get(i["id"], []))]
    linked_ids = {i["id"] for i in linked}
    sections = _theme_sections(pool, config, [p for p in papers if p["id"] not in linked_ids], wanted_themes, themes,
                               glossary)
    trials = [pool.entry(i, glossary=glossary) for i in fresh if i.get("kind") == "trial"]
    if glossary is not None:  # trials a reader could join come first (a stable sort keeps the rank)
        trials.sort(key=lambda e: not is_open(e))
    data = {
        "topic": clean_text(config.topic.name), "slug": clean_text(config.topic.slug or "topic"),
        "period_start": period_start, "period_end": now, "first": first,
        "style": "plain" if glossary is not None else "clinical",
        "subscriber": None if subscriber is None else {
            "id": subscriber["id"], "email": subscriber["email"], "name": clean_text(subscriber.get("name")),
            "themes": themes, "style": "plain" if glossary is not None else "clinical"},
        "sections": sections, "trials": trials,
        "linked": [_linked_entry(i, pool, glossary) for i in linked],
        "changes": _changes(pool, sent, wanted, start_day, news["oldest"], glossary),
        "notices": _notices(pool, subscriber, sent) if subscriber else [],
        "more": more,
        "notes": outage_notes(pool.runs, news["since"]) + ([overflow_note(more, max_items, config)] if more else []),
    }
    data["overview"] = _overview(data, fresh)
    return data


def _theme_sections(pool: Pool, config, papers: list[dict], wanted_themes: list[str], themes,
                    glossary: dict | None = None) -> list[dict]:
    titles = theme_titles(config, plain=glossary is not None)
    groups: dict[str | None, list] = {}
    for item in papers:
        labels = [t for t in item["_labels"] if t in wanted_themes]
        theme = max(labels, key=lambda t: item["_scores"].get(t, 0)) if labels else None
        if theme is None and themes is not None and not item.get("unscored"):
            continue  # a theme-restricted subscriber only gets their themes
        groups.setdefault(theme, []).append(item)
    sections = []
    for theme in [*wanted_themes, None]:
        members = groups.get(theme)
        if not members:
            continue
        members.sort(key=lambda i: (-(i["_scores"].get(theme, 0) if theme else 0), -(i.get("relevance") or 0), i["id"]))
        fallback = "Other new research" if config.themes else "New research"  # a profile with no themes
        sections.append({"theme": theme, "title": titles.get(theme, fallback),
                         "items": [pool.entry(i, theme, glossary) for i in members]})
    return sections


def _link_phrase(evidence: str) -> str:
    """Link evidence (``databank``, ``abstract``, ``registry_reference:RESULT`` …) as words."""
    text = evidence.lower()
    if "result" in text:
        return "reports results of"
    if text.startswith("databank"):
        return "reports on"
    if "background" in text:
        return "is cited as background by"
    return "mentions"


def _linked_entry(item: dict, pool: Pool, glossary: dict | None = None) -> dict:
    entry = dict(pool.entry(item, glossary=glossary))  # a copy: the cached entry has no trial links
    entry["trial_links"] = [
        {"nct_id": t.split(":", 1)[1], "phrase": _link_phrase(ev),
         "url": trial_url(t.split(":", 1)[1])}
        for t, ev in pool.links.get(item["id"], []) if t in pool.trial_ids]
    return entry


_TRACKED_DATE = re.compile(r"^(\d{4}(?:-\d{2}){0,2})(?: \((actual|estimated|anticipated)\))?$", re.IGNORECASE)


def _change_value(value) -> str:
    """A change value as a reader wants it: a tracked date '2026-12-05 (actual)' → '5 Dec 2026',
    '2027-06 (estimated)' → 'Jun 2027 (estimated)'; a status 'ACTIVE_NOT_RECRUITING' → words."""
    text = humanize_value(value)
    match = _TRACKED_DATE.match(text)
    if not match:
        return text
    kind = (match.group(2) or "").lower()
    return display_date(match.group(1)) + (f" ({kind})" if kind and kind != "actual" else "")


def change_text(field: str, old, new) -> str:
    """'Status: Recruiting → Completed', 'Results posted on 5 Dec 2026', 'Enrollment: 40 → 60'."""
    label = FIELD_LABELS.get(field, clean_text(field).replace("_", " ").capitalize())
    old_v, new_v = _change_value(old), _change_value(new)
    if "result" in (field or "").lower() and (not old_v or old_v.lower() in ("no", "false", "0")):
        return "Results posted" + (f" on {new_v}" if new_v and new_v.lower() not in ("true", "1", "yes") else "")
    if not old_v:
        return f"{label}: {new_v} (new)"
    if not new_v:
        return f"{label}: {old_v} → (removed)"
    return f"{label}: {old_v} → {new_v}"


def _changes(pool: Pool, sent: set, wanted, start_day: str, oldest: str = "",
             glossary: dict | None = None) -> list[dict]:
    """Trial changes not yet sent, detected since ``start_day`` (and not before ``oldest``); with
    ``glossary`` (plain style), titles spelled out and a new status said in words."""
    by_trial: dict[str, dict] = {}
    for change in pool.changes:
        key = f"change:{change['id']}"
        trial_id = _trial_key(change["nct_id"])
        item = pool.item(trial_id)
        if (key in sent or change["detected_at"][:10] < start_day or change["detected_at"] < oldest
                or not item or item.get("relevant") == 0):
            continue  # (a trial the ranker judged off-topic is tracked, but its changes are not news)
        item = {**item, "_labels": loads(item.get("labels"), []) or [], "unscored": item.get("labels") is None}
        if item.get("labels") is not None and not wanted(item):
            continue
        entry = by_trial.setdefault(trial_id, {
            "key": trial_id, "nct_id": clean_text(item.get("nct_id") or change["nct_id"]),
            "title": clean_text(item.get("title")) if glossary is None
            else spell_out(clean_text(item.get("title")), glossary, set()),
            "links": item_links(item), "changes": [], "keys": []})
        text = change_text(change["field"], change["old"], change["new"])
        meaning = status_words({"overall_status": change["new"]}).partition(" — ")[2]
        if glossary is not None and change["field"] in ("overall_status", "status") and meaning:
            text = f"{text} — {meaning}"  # "Status: Recruiting → Completed — the study has ended"
        if text and text not in entry["changes"]:
            entry["changes"].append(text)
        entry["keys"].append(key)
    for entry in by_trial.values():  # has_results and results_first_posted both say "results posted"
        if "Results posted" in entry["changes"] and any(t.startswith("Results posted on ") for t in entry["changes"]):
            entry["changes"].remove("Results posted")
    return list(by_trial.values())


def _notices(pool: Pool, subscriber: dict, sent: set) -> list[dict]:
    """Retractions/corrections of items this subscriber already received."""
    received = store.delivered_item_ids(pool.db, subscriber["id"])
    if not received:
        return []
    found: dict[str, set] = {}
    for item_id in received:
        item = pool.item(item_id)
        if not item:
            continue
        if "Retracted Publication" in (loads(item.get("pub_types"), []) or []):
            found.setdefault(item_id, set()).add("retracted")
        for ref in _corrections(item):
            if ref["type"] in CORRECTION_IN:
                found.setdefault(item_id, set()).add(CORRECTION_IN[ref["type"]])
    # New notice items (an erratum, a retraction notice) that point back at a received paper.
    received_pmids = {i.split(":", 1)[1]: i for i in received if i.startswith("pmid:")}
    for item in pool.notice_items:
        for ref in _corrections(item):
            target = received_pmids.get(ref.get("pmid") or "")
            if target and ref["type"] in CORRECTION_OF:
                found.setdefault(target, set()).add(CORRECTION_OF[ref["type"]])
    notices = []
    for item_id, kinds in sorted(found.items()):
        key = f"notice:{item_id}:{'+'.join(sorted(kinds))}"
        if key in sent:
            continue
        item = pool.item(item_id)
        notices.append({"key": key, "item_id": item_id, "title": clean_text(item.get("title")),
                        "what": " and ".join(sorted(kinds)), "links": item_links(item)})
    return notices


def _corrections(item: dict) -> list[dict]:
    extra = loads(item.get("extra"), {}) if isinstance(item.get("extra"), str) else (item.get("extra") or {})
    refs = []
    for ref in (extra or {}).get("corrections") or []:
        if isinstance(ref, dict):
            kind = ref.get("type") or ref.get("ref_type") or ref.get("RefType") or ""
            pmid = str(ref.get("pmid") or ref.get("PMID") or "").strip()
            refs.append({"type": kind, "pmid": pmid})
    return refs


def _overview(data: dict, fresh: list[dict]) -> dict:
    themes = [{"title": s["title"], "count": len(s["items"])} for s in data["sections"]]
    sources: dict[str, int] = {}
    for item in fresh:
        for source in loads(item.get("sources"), []) or ["unknown"]:
            name = {"pubmed": "PubMed", "ctgov": "ClinicalTrials.gov"}.get(source, clean_text(source))
            sources[name] = sources.get(name, 0) + 1
    papers = sum(len(s["items"]) for s in data["sections"]) + len(data["linked"])
    changes = sum(len(c["changes"]) for c in data["changes"])
    return {"papers": papers, "trials": len(data["trials"]), "changes": changes,
            "notices": len(data["notices"]), "themes": themes,
            "sources": [{"name": k, "count": v} for k, v in sorted(sources.items())],
            "total": papers + len(data["trials"]) + changes + len(data["notices"])}


def digest_keys(data: dict) -> list[dict]:
    """Every key the digest holds, with its section, theme and position (for digest_items/sent_items)."""
    rows, position = [], 0
    for section in data["sections"]:
        for entry in section["items"]:
            position += 1
            rows.append({"key": entry["key"], "section": "theme", "theme": section["theme"], "position": position})
    for name in ("trials", "linked", "notices"):
        for entry in data[name]:
            position += 1
            rows.append({"key": entry["key"], "section": name, "theme": None, "position": position})
    for entry in data["changes"]:
        for key in entry["keys"]:
            position += 1
            rows.append({"key": key, "section": "changes", "theme": None, "position": position})
    return rows


# --- building every due digest -------------------------------------------------------------

def build_digests(db: sqlite_utils.Database, config, *, now: str | None = None, email: str | None = None,
                  public: bool = True, progress: bool = False) -> BuildResult:
    """Build and queue a digest for every active, due subscriber (or just ``email``), plus the
    public archive issue. Returns what was built."""
    now = now or now_iso()
    result = BuildResult()
    store.prune_bodies(db, iso_before(KEEP_BODIES_DAYS * DAY, now))
    subscribers = subscriber_store.active_subscribers(db)
    if email:
        subscribers = [s for s in subscribers if s["email"].lower() == email.lower()]
    windows = []
    pending = store.subscribers_with_pending_delivery(db)
    for sub in subscribers:
        if sub["id"] in pending:
            result.skipped += 1  # the outbox retries that one first; no second digest meanwhile
            continue
        start, first, due = digest_window(db, sub["id"], config, now, sub.get("frequency") or "weekly")
        if not due:
            result.skipped += 1
            continue
        windows.append((sub, start, first))
    public_window = digest_window(db, None, config, now) if public and not email else None
    if not windows and not public_window:
        return result
    # one pool for every digest of the run: what any of them may hold (max_age_days; the
    # source runs since the oldest of their previous digests, for the outage lines)
    pool = Pool(db, iso_before(max_age_days(config) * DAY, now))
    oldest_since = min([w[1] for w in windows] + ([public_window[0]] if public_window else []))
    if oldest_since < iso_before(max_age_days(config) * DAY, now):
        pool.runs = store.fetch_runs_since(db, oldest_since)
    drawn: dict = {}  # each distinct entry rendered once for the whole run
    for sub, start, first in tqdm(windows, desc="digests", unit="subscriber", disable=not progress):
        data = build_digest_data(pool, config, sub, start, now, first)
        keys = digest_keys(data)
        if not keys and not sub.get("send_empty"):
            result.empty += 1
            continue
        message_id = make_msgid(idstring="digest", domain=_from_domain(config))
        unsubscribe = unsubscribe_info(db, config, sub, now)
        subject, html, text = render_digest(data, config, unsubscribe, cache=drawn,
                                            links=subscriber_links(db, config, sub, now))
        data["unsubscribe"] = unsubscribe  # the send step puts the same token in the headers
        digest_id = store.store_digest(db, _digest_row(sub["id"], data, subject, html, text, keys), keys, message_id)
        result.built.append(digest_id)
    if public_window and public_window[2]:
        data = build_digest_data(pool, config, None, public_window[0], now, public_window[1])
        keys = digest_keys(data)
        if keys:
            subject, html, text = render_digest(data, config, None)
            result.public = store.store_digest(db, _digest_row(None, data, subject, html, text, keys), keys, None)
    log.info("digest build: %d queued, %d empty, %d skipped%s", len(result.built), result.empty, result.skipped,
             ", public issue built" if result.public else "")
    return result


def _digest_row(subscriber_id, data, subject, html, text, keys) -> dict:
    return {"subscriber_id": subscriber_id, "period_start": data["period_start"], "period_end": data["period_end"],
            "subject": subject, "html": html, "text": text, "item_count": len(keys), "data": store.dumps(data)}


def _from_domain(config) -> str:
    address = parseaddr((config.email or {}).get("from") or "")[1]
    return address.rpartition("@")[2] or "spsbot.localhost"


def preview_digest(db: sqlite_utils.Database, config, email: str, *, now: str | None = None,
                   style: str | None = None):
    """The digest ``email`` would get now, rendered but not stored or reserved.

    Returns (data, subject, html, text, message bytes). An address that is not subscribed gets the
    all-themes digest of the last period (a maintainer checking what a newcomer would see), in
    ``style`` ("clinical" unless given; "plain" for the plain-words digest).
    """
    now = now or now_iso()
    subscriber = subscriber_store.find_subscriber(db, email)
    if subscriber:
        start, first, _ = digest_window(db, subscriber["id"], config, now, subscriber.get("frequency") or "weekly")
    else:
        subscriber = {"id": 0, "email": email, "name": None, "themes": None, "max_items": None,
                      "style": style or "clinical"}
        start, first = iso_before(period_days(config) * DAY, now), True
    pool = Pool(db, iso_before(max_age_days(config) * DAY, now))
    data = build_digest_data(pool, config, subscriber, start, now, first)
    unsubscribe = unsubscribe_info(db, config, subscriber, now)
    subject, html, text = render_digest(data, config, unsubscribe, links=subscriber_links(db, config, subscriber, now))
    message = build_message(subject=subject, html=html, text=text,
                            sender=(config.email or {}).get("from") or "spsbot <spsbot@localhost>",
                            to_email=subscriber["email"], to_name=subscriber.get("name"),
                            message_id=make_msgid(idstring="preview", domain=_from_domain(config)),
                            unsubscribe=unsubscribe, date=now)
    return data, subject, html, text, message


def write_preview(db: sqlite_utils.Database, config, email: str, out_dir, *, now: str | None = None,
                  style: str | None = None) -> dict:
    """Write the digest ``email`` would get now as ``.html``, ``.txt`` and ``.eml`` in ``out_dir``.

    Nothing is stored or reserved. The demo calls this for a sample address (all themes, last
    period; both styles, the plain one's files ending "-plain"); pass ``now`` to date the digest at
    the end of recorded data. Returns the paths.
    """
    data, subject, html, text, message = preview_digest(db, config, email, now=now, style=style)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = "digest-" + re.sub(r"[^A-Za-z0-9._-]+", "_", email) + "-" + data["period_end"][:10]
    stem += "-plain" if style == "plain" else ""
    paths = {"html": out / f"{stem}.html", "text": out / f"{stem}.txt", "eml": out / f"{stem}.eml"}
    paths["html"].write_text(html, encoding="utf-8")
    paths["text"].write_text(text, encoding="utf-8")
    paths["eml"].write_bytes(message)
    return {"subject": subject, "items": data["overview"]["total"], **{k: str(v) for k, v in paths.items()}}
