"""Build digests: for each due subscriber, what is new since their previous digest.

A digest covers ``period_start`` (the previous digest's end, or ``period_days`` ago for the
first one) to now. It holds relevant items whose Entrez/publication date falls in that window
(so the first digest after a backfill is one week's worth, never the back catalogue), new trials,
trial changes, papers linked to tracked trials and retraction/correction notices for items the
subscriber already received. Every key it holds is reserved in ``sent_items`` when it is stored,
so nothing reaches the same subscriber twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import make_msgid

import sqlite_utils

from bot.digest.entries import (CORRECTION_IN, CORRECTION_OF, clean_text, humanize_value,
                                in_window, item_dates, item_links, make_entry)
from bot.store import loads, now_iso
from bot.store import digests as store

log = logging.getLogger(__name__)

FREQUENCY_DAYS = {"daily": 1, "weekly": None, "monthly": 30}  # None = config period_days
DUE_SLACK = timedelta(hours=12)  # a cron job that starts a little early still counts as a week
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


def _parse(ts: str) -> datetime:
    moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def period_days(config) -> int:
    return int((config.digest or {}).get("period_days") or 7)


def window_for(db, subscriber_id: int | None, config, now: str, frequency: str = "weekly"):
    """(period_start, is_first, due) for a subscriber (None = the public issue)."""
    days = FREQUENCY_DAYS.get(frequency) or period_days(config)
    last = store.last_digest(db, subscriber_id)
    end = _parse(now)
    if last is None:
        return _iso(end - timedelta(days=days)), True, True
    start = _parse(last["period_end"])
    return last["period_end"], False, end - start >= timedelta(days=days) - DUE_SLACK


# --- loading candidates --------------------------------------------------------------------

_ITEM_SQL = """
    select i.*, s.relevance, s.relevant, s.themes as theme_scores, s.labels, s.why, s.evidence,
           (s.item_id is null) as unscored
    from items i left join scores s on s.item_id = i.id
    where (s.relevant = 1 or (i.kind = 'trial' and s.item_id is null))
      and coalesce(max(i.entrez_date, i.pub_date), i.entrez_date, i.pub_date, i.first_seen) >= ?
"""


class Pool:
    """Everything the builder reads, loaded once per build run and shared by all subscribers."""

    def __init__(self, db: sqlite_utils.Database, since: str):
        self.db = db
        cursor = db.execute(_ITEM_SQL, [since[:4]])  # year prefix: a cheap SQL filter, exact check later
        names = [c[0] for c in cursor.description]
        self.items = [dict(zip(names, row)) for row in cursor.fetchall()]
        for item in self.items:
            item["_dates"] = item_dates(item)
            item["_labels"] = loads(item.get("labels"), []) or []
            item["_scores"] = loads(item.get("theme_scores"), {}) or {}
        self.trial_ids = {row[0] for row in db.execute("select id from items where kind = 'trial'")}
        # Notices (errata, retraction notices) are rarely scored relevant themselves: read apart.
        self.notice_items = [{"id": r[0], "extra": r[1]} for r in db.execute(
            "select id, extra from items where extra like '%\"corrections\"%' and (first_seen >= ? or updated_at >= ?)",
            [since, since])]
        self.changes = [dict(zip(("id", "nct_id", "field", "old", "new", "detected_at"), row)) for row in db.execute(
            "select id, nct_id, field, old, new, detected_at from trial_changes where detected_at >= ? order by id",
            [since[:10]])]
        self.links: dict[str, list[str]] = {}
        detail = "detail" if "detail" in db["links"].columns_dict else "''"
        rows = db.execute(f"select paper_id, trial_id, evidence, {detail} from links")
        for paper_id, trial_id, evidence, extra in rows:
            self.links.setdefault(paper_id, []).append((_trial_key(trial_id), f"{evidence or ''}:{extra or ''}"))
        self._rows: dict[str, dict] = {}
        self._entries: dict[tuple, dict] = {}

    def entry(self, item: dict, theme: str | None = None) -> dict:
        """The display entry of an item (cached: a thousand subscribers share the same items)."""
        key = (item["id"], theme)
        if key not in self._entries:
            self._entries[key] = make_entry(item, theme)
        return self._entries[key]

    def item(self, item_id: str) -> dict | None:
        if item_id not in self._rows:
            cursor = self.db.execute("select i.*, s.labels, s.evidence, s.why, s.relevance, s.relevant from items i "
                                     "left join scores s on s.item_id = i.id where i.id = ?", [item_id])
            names = [c[0] for c in cursor.description]
            row = cursor.fetchone()
            self._rows[item_id] = dict(zip(names, row)) if row else None
        return self._rows[item_id]


def _trial_key(trial_id: str) -> str:
    trial_id = (trial_id or "").strip()
    return trial_id if trial_id.startswith("nct:") else f"nct:{trial_id.upper()}"


# --- building one digest -------------------------------------------------------------------

def build_digest_data(pool: Pool, config, subscriber: dict | None, period_start: str, now: str,
                      first: bool) -> dict:
    """The digest for one subscriber (``None`` = public issue) as a JSON-able dict; not stored."""
    themes = loads((subscriber or {}).get("themes")) or None
    max_items = int((subscriber or {}).get("max_items") or (config.digest or {}).get("max_items") or 20)
    if subscriber is None:
        max_items = 200
    sent = store.sent_keys(pool.db, subscriber["id"] if subscriber else None)
    wanted_themes = themes or config.theme_names
    start_day = period_start[:10]
    # After the first digest, items indexed a little before the window but fetched late still
    # count (the sources re-read a few overlap days); the first digest is strictly the last period.
    grace_day = start_day if first else _iso(_parse(period_start) - timedelta(days=period_days(config)))[:10]

    def wanted(item) -> bool:
        if themes is None or item.get("unscored"):
            return True
        return bool(set(item["_labels"]) & set(themes))

    fresh = [i for i in pool.items if i["id"] not in sent and in_window(i, grace_day, now[:10])
             and (i.get("first_seen") or "") <= now and wanted(i)]
    fresh.sort(key=lambda i: (-(i.get("relevance") or 0), i["id"]))
    fresh = fresh[:max_items]

    papers = [i for i in fresh if i.get("kind") != "trial"]
    linked = [i for i in papers if any(t in pool.trial_ids for t, _ in pool.links.get(i["id"], []))]
    linked_ids = {i["id"] for i in linked}
    sections = _theme_sections(pool, config, [p for p in papers if p["id"] not in linked_ids], wanted_themes, themes)
    trials = [pool.entry(i) for i in fresh if i.get("kind") == "trial"]
    data = {
        "topic": clean_text(config.topic.name), "slug": clean_text(config.topic.slug or "topic"),
        "period_start": period_start, "period_end": now, "first": first,
        "subscriber": None if subscriber is None else {
            "id": subscriber["id"], "email": subscriber["email"], "name": clean_text(subscriber.get("name")),
            "themes": themes},
        "sections": sections, "trials": trials,
        "linked": [_linked_entry(i, pool) for i in linked],
        "changes": _changes(pool, sent, wanted, start_day),
        "notices": _notices(pool, subscriber, sent) if subscriber else [],
    }
    data["overview"] = _overview(data, fresh)
    return data


def _theme_sections(pool: Pool, config, papers: list[dict], wanted_themes: list[str], themes) -> list[dict]:
    titles = {t.name: t.title or t.name for t in config.themes}
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
        sections.append({"theme": theme, "title": titles.get(theme, "Other new research"),
                         "items": [pool.entry(i, theme) for i in members]})
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


def _linked_entry(item: dict, pool: Pool) -> dict:
    entry = dict(pool.entry(item))  # a copy: the cached entry has no trial links
    entry["trial_links"] = [
        {"nct_id": t.split(":", 1)[1], "phrase": _link_phrase(ev),
         "url": f"https://clinicaltrials.gov/study/{t.split(':', 1)[1]}"}
        for t, ev in pool.links.get(item["id"], []) if t in pool.trial_ids]
    return entry


def change_text(field: str, old, new) -> str:
    """'Status: Recruiting → Completed', 'Results posted', 'Enrollment: 40 → 60'."""
    label = FIELD_LABELS.get(field, clean_text(field).replace("_", " ").capitalize())
    old_v, new_v = humanize_value(old), humanize_value(new)
    if "result" in (field or "").lower() and (not old_v or old_v.lower() in ("no", "false", "0")):
        return "Results posted" + (f" ({new_v})" if new_v and new_v.lower() not in ("true", "1", "yes") else "")
    if not old_v:
        return f"{label}: {new_v} (new)"
    if not new_v:
        return f"{label}: {old_v} → (removed)"
    return f"{label}: {old_v} → {new_v}"


def _changes(pool: Pool, sent: set, wanted, start_day: str) -> list[dict]:
    by_trial: dict[str, dict] = {}
    for change in pool.changes:
        key = f"change:{change['id']}"
        trial_id = _trial_key(change["nct_id"])
        item = pool.item(trial_id)
        if key in sent or change["detected_at"][:10] < start_day or not item or item.get("relevant") == 0:
            continue  # (a trial the ranker judged off-topic is tracked, but its changes are not news)
        item = {**item, "_labels": loads(item.get("labels"), []) or [], "unscored": item.get("labels") is None}
        if item.get("labels") is not None and not wanted(item):
            continue
        entry = by_trial.setdefault(trial_id, {
            "key": trial_id, "nct_id": clean_text(item.get("nct_id") or change["nct_id"]),
            "title": clean_text(item.get("title")), "links": item_links(item), "changes": [], "keys": []})
        text = change_text(change["field"], change["old"], change["new"])
        if text and text not in entry["changes"]:
            entry["changes"].append(text)
        entry["keys"].append(key)
    for entry in by_trial.values():  # has_results and results_first_posted both say "results posted"
        if "Results posted" in entry["changes"] and any(t.startswith("Results posted (") for t in entry["changes"]):
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
    # (imported here: render imports builder's helpers)
    from bot.digest.render import render_digest, subscriber_links, unsubscribe_info

    now = now or now_iso()
    result = BuildResult()
    store.prune_bodies(db, _iso(_parse(now) - timedelta(days=KEEP_BODIES_DAYS)))
    subscribers = store.active_subscribers(db)
    if email:
        subscribers = [s for s in subscribers if s["email"].lower() == email.lower()]
    windows = []
    pending = {row[0] for row in db.execute("select distinct subscriber_id from deliveries where status = 'pending'")}
    for sub in subscribers:
        if sub["id"] in pending:
            result.skipped += 1  # the outbox retries that one first; no second digest meanwhile
            continue
        start, first, due = window_for(db, sub["id"], config, now, sub.get("frequency") or "weekly")
        if not due:
            result.skipped += 1
            continue
        windows.append((sub, start, first))
    public_window = window_for(db, None, config, now) if public and not email else None
    earliest = min([w[1] for w in windows] + ([public_window[0]] if public_window else []), default=None)
    if earliest is None:
        return result
    earliest = _iso(_parse(earliest) - timedelta(days=period_days(config)))
    pool = Pool(db, earliest)
    drawn: dict = {}  # each distinct entry rendered once for the whole run
    from tqdm import tqdm
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
    from email.utils import parseaddr
    address = parseaddr((config.email or {}).get("from") or "")[1]
    return address.rpartition("@")[2] or "spsbot.localhost"


def preview_digest(db: sqlite_utils.Database, config, email: str, *, now: str | None = None):
    """The digest ``email`` would get now, rendered but not stored or reserved.

    Returns (data, subject, html, text, message bytes). An address that is not subscribed gets the
    all-themes digest of the last period (a maintainer checking what a newcomer would see).
    """
    from bot.digest.render import build_message, render_digest, subscriber_links, unsubscribe_info

    now = now or now_iso()
    subscriber = store.find_subscriber(db, email)
    if subscriber:
        start, first, _ = window_for(db, subscriber["id"], config, now, subscriber.get("frequency") or "weekly")
    else:
        subscriber = {"id": 0, "email": email, "name": None, "themes": None, "max_items": None}
        start, first = _iso(_parse(now) - timedelta(days=period_days(config))), True
    pool = Pool(db, _iso(_parse(start) - timedelta(days=period_days(config))))
    data = build_digest_data(pool, config, subscriber, start, now, first)
    unsubscribe = unsubscribe_info(db, config, subscriber, now)
    subject, html, text = render_digest(data, config, unsubscribe, links=subscriber_links(db, config, subscriber, now))
    message = build_message(subject=subject, html=html, text=text,
                            sender=(config.email or {}).get("from") or "spsbot <spsbot@localhost>",
                            to_email=subscriber["email"], to_name=subscriber.get("name"),
                            message_id=make_msgid(idstring="preview", domain=_from_domain(config)),
                            unsubscribe=unsubscribe, date=now)
    return data, subject, html, text, message


def write_preview(db: sqlite_utils.Database, config, email: str, out_dir, *, now: str | None = None) -> dict:
    """Write the digest ``email`` would get now as ``.html``, ``.txt`` and ``.eml`` in ``out_dir``.

    Nothing is stored or reserved. The demo calls this for a sample address (all themes, last
    period); pass ``now`` to date the digest at the end of recorded data. Returns the paths.
    """
    import re
    from pathlib import Path

    data, subject, html, text, message = preview_digest(db, config, email, now=now)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = "digest-" + re.sub(r"[^A-Za-z0-9._-]+", "_", email) + "-" + data["period_end"][:10]
    paths = {"html": out / f"{stem}.html", "text": out / f"{stem}.txt", "eml": out / f"{stem}.eml"}
    paths["html"].write_text(html, encoding="utf-8")
    paths["text"].write_text(text, encoding="utf-8")
    paths["eml"].write_bytes(message)
    return {"subject": subject, "items": data["overview"]["total"], **{k: str(v) for k, v in paths.items()}}
