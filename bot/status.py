"""The operator's view of the pipeline: ``spsbot status``.

``collect_status(db, config)`` reads only the database (runs, items, deliveries, subscribers) and
returns a plain dict (``--json`` prints it as is); ``format_status`` turns it into lines for a
terminal. A source is *stale* when it has not succeeded for longer than twice the schedule
(``[digest] period_days``, 7 by default → 14 days) or never succeeded at all: a weekly cron job
that quietly broke is then visible after one missed run, not after a month. ``status`` also runs
``PRAGMA quick_check`` on the file and says what it found (``integrity``); stored error texts are
scrubbed of secrets (``bot.redact``) before they are shown.

``problems`` lists what is wrong, most urgent first (the CLI turns the first into the exit code):
``integrity`` (the file fails quick_check), ``config_invalid`` (the next run would fail at once),
``run_failed`` (the last ``spsbot run`` failed or was killed), ``deliveries_failing`` (a message
is being retried after an SMTP error, or one failed or bounced within the stale window), ``stale``,
``source_failed`` (a source's last attempt failed, though it succeeded recently: monitoring must
not stay green for two weeks). Every problem line ends with what to do next; stored error texts
are shortened at whole words in the middle, so their cause (at the end) is kept.
Warnings that are not failures (the ranker lost its bundled seed) are shown but are not problems.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import sqlite_utils

from bot.dates import parse_timestamp
from bot.errors import shorten
from bot.fetch.registry import SOURCES
from bot.links import pubmed_url, trial_url
from bot.ranking.features import profile_warning
from bot.redact import scrub
from bot.store import integrity_problem, loads, now_iso
from bot.store import status as store
from bot.store.digests import get_setting
from bot.store.quarantine import open_quarantine, quarantine_counts
from bot.store.subscribers import subscriber_counts

__all__ = ["collect_status", "format_status", "status_json", "SUCCESS_STATUSES", "PROBLEMS",
           "ranker_seed_state"]

# A run with one of these statuses means the source was read successfully.
SUCCESS_STATUSES = ("ok", "nothing_new")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _age_days(then: str | None, now: datetime) -> float | None:
    parsed = _parse_time(then)
    return round((now - parsed).total_seconds() / 86400, 2) if parsed else None


def _expected_sources(config) -> list[str]:
    try:
        from bot.fetch import enabled_sources
        return enabled_sources(config) if config is not None else []
    except Exception:  # noqa: BLE001 - a broken config still lets status show what ran
        return []


def _source_runs(db: sqlite_utils.Database, source: str) -> tuple[dict | None, dict | None]:
    """(last run, last successful run) of a fetch source."""
    return store.last_run(db, source), store.last_successful_run(db, source, SUCCESS_STATUSES)


def _newest_items(db: sqlite_utils.Database) -> dict[str, str]:
    """items.sources tag ("pubmed", "ctgov", "feed:<name>" → "feed") -> newest first_seen."""
    newest: dict[str, str] = {}
    for tag, first_seen in store.newest_first_seen_by_source_tag(db):
        key = "feed" if str(tag).startswith("feed") else str(tag)
        if first_seen and first_seen > newest.get(key, ""):
            newest[key] = first_seen
    return newest


# most urgent first
PROBLEMS = ("integrity", "config_invalid", "run_failed", "deliveries_failing", "stale", "source_failed")


def collect_status(db: sqlite_utils.Database, config=None, now: str | None = None,
                   config_error: str | None = None) -> dict:
    """Everything ``spsbot status`` shows, as a JSON-ready dict (``problems`` is the verdict).

    ``config_error``: the configuration could not be loaded (``config`` is then None).
    """
    now_dt = _parse_time(now or now_iso()) or datetime.now(timezone.utc)
    period_days = int((config.digest.get("period_days") if config is not None else None) or 7)
    stale_after = 2 * period_days
    names = list(dict.fromkeys(_expected_sources(config) + sorted(store.recorded_sources(db))))
    newest = _newest_items(db)
    sources, warnings, failed = [], [], []
    for name in names:
        last, ok = _source_runs(db, name)
        counts = loads(last.get("counts"), {}) if last else {}
        success_age = _age_days(ok["started"], now_dt) if ok else None
        stale = success_age is None or success_age > stale_after
        tag = SOURCES[name].item_tag if name in SOURCES else name
        entry = {
            "source": name,
            "last_run": last and {"started": last["started"], "finished": last["finished"],
                                  "duration_s": last["duration_s"], "status": last["status"],
                                  "new": counts.get("new"), "updated": counts.get("updated"),
                                  "error": scrub(last["error"]) if last["error"] else None},
            "last_success": ok["started"] if ok else None, "last_success_age_days": success_age,
            "newest_item_seen": newest.get(tag), "newest_item_age_days": _age_days(newest.get(tag), now_dt),
            "stale": stale,
        }
        sources.append(entry)
        if stale:
            why = ("has never succeeded" if ok is None else
                   f"last succeeded {success_age:.1f} days ago ({ok['started']})")
            warnings.append(f"source {name} {why}; stale after {stale_after} days "
                            f"(twice the {period_days}-day schedule): {_fix_source(name)}")
        elif last and last["status"] in ("failed", "interrupted"):
            cause = f": {shorten(scrub(last['error']), 200)}" if last["error"] else ""
            failed.append(f"source {name}'s last attempt ({last['started']}) {last['status']}{cause}; "
                          f"its new items are delayed, not lost: {_fix_source(name)}")
    if not names:
        warnings.append("no source has ever run: run `spsbot fetch` or `spsbot run`")
    stale = bool(warnings)
    problems = (["stale"] if stale else []) + (["source_failed"] if failed else [])
    warnings.extend(failed)
    commands = _last_command_runs(db)
    last_run = next((c for c in commands if c["command"] == "run"), None)
    if last_run and last_run["status"] in ("failed", "interrupted"):
        problems.append("run_failed")
        warnings.insert(0, f"the last `spsbot run` ({last_run['started']}) {last_run['status']}: "
                           f"{shorten(last_run['error'] or 'no error recorded', 200)}; fix that, then run "
                           "`spsbot run` again (what was sent is never sent twice)")
    since = (now_dt - timedelta(days=stale_after)).isoformat(timespec="seconds")
    deliveries = _failing_deliveries(db, since)
    if deliveries["retrying"] or deliveries["failed"]:
        problems.append("deliveries_failing")
        warnings.insert(0, f"deliveries failing: {deliveries['retrying']} being retried after an SMTP error, "
                           f"{deliveries['failed']} failed or bounced in the last {stale_after} days"
                           + (f" (last error: {deliveries['last_error']})" if deliveries["last_error"] else "")
                           + "; check the SMTP server and the addresses (`spsbot subscribers list --status "
                             "bouncing`); pending messages are retried next run")
    integrity = _integrity(db)
    if not integrity["ok"]:
        problems.append("integrity")
    if config_error:
        problems.append("config_invalid")
        first_line = scrub(config_error.splitlines()[0])
        warnings.insert(0, f"the configuration is invalid, the next run will fail: {first_line}; fix it, then "
                           "check with `spsbot status`")
    profile = profile_warning(config) if config is not None else None
    if profile:  # placeholders left, an abbreviation not declared, a query that names nothing on its own
        warnings.append(profile)
    seed = ranker_seed_state(db)
    if seed and seed.get("warning"):
        warnings.append(seed["warning"])
    if seed and seed.get("mesh_note"):  # the topic's MeSH heading found on no stored record
        warnings.append(seed["mesh_note"])
    outbox = store.delivery_counts(db)
    return {
        "now": now_dt.isoformat(timespec="seconds"), "period_days": period_days,
        "stale_after_days": stale_after, "sources": sources,
        "items": store.item_counts(db),
        "commands": commands,
        "pending_deliveries": outbox.get("pending", 0), "failed_deliveries": outbox.get("failed", 0),
        "retrying_deliveries": deliveries["retrying"], "recent_failed_deliveries": deliveries["failed"],
        "subscribers": subscriber_counts(db),
        "ranker_seed": seed,
        "warnings": warnings, "stale": stale,
        "problems": [p for p in PROBLEMS if p in problems],
        "quarantine": _quarantine(db, now_dt),
        "integrity": integrity,
    }


def _failing_deliveries(db: sqlite_utils.Database, since: str) -> dict:
    """Pending deliveries already tried (an SMTP 4xx or a dropped connection: retried next run),
    and deliveries that failed or bounced since ``since``, with the latest error."""
    retrying, failed, last_error = store.failing_deliveries(db, since)
    return {"retrying": retrying, "failed": failed,
            "last_error": shorten(scrub(last_error), 200) if last_error else None}


def _fix_source(name: str) -> str:
    """What to do about a failing source (the end of its WARNING line)."""
    return (f"see why with `spsbot -v fetch --source {name}` (network, DNS, proxy, the service's status page); "
            "the next run fetches what was missed")


def ranker_seed_state(db: sqlite_utils.Database) -> dict | None:
    """What the last ``rank`` recorded about the bundled seed (``bot.store.ranking``), if anything."""
    value = get_setting(db, "ranker_seed")
    return loads(value, None) if value else None


def _quarantine(db: sqlite_utils.Database, now: datetime, shown: int = 10) -> dict:
    """Records a source served that could not be parsed or stored (issue 11: held, not lost),
    each with the page a curator can check it on and how many days it has been held."""
    counts = quarantine_counts(db)
    records = [{**row, "url": _record_url(row["source"], row["record_id"]),
                "held_days": _age_days(row["first_seen"], now)} for row in open_quarantine(db)[:shown]]
    return {"count": sum(counts.values()), "by_source": counts, "records": records}


def _record_url(source: str, record_id: str) -> str | None:
    if source == "pubmed" and record_id.isdigit():
        return pubmed_url(record_id)
    if source == "clinicaltrials" and record_id.upper().startswith("NCT"):
        return trial_url(record_id)
    return None


def _integrity(db: sqlite_utils.Database) -> dict:
    """What ``PRAGMA quick_check`` says about the database file (``ok`` false: do not send)."""
    problem = integrity_problem(db)
    return {"check": "PRAGMA quick_check", "ok": problem is None, "result": problem or "ok"}


def _last_command_runs(db: sqlite_utils.Database) -> list[dict]:
    """The newest run of each whole-stage command (runs with no single source: run, rank, digest…)."""
    return [{**run, "error": scrub(run["error"]) if run["error"] else None} for run in store.last_command_runs(db)]


def _days(value: float | None) -> str:
    if value is None:
        return "never"
    if value < 1:
        return f"{value * 24:.1f} h ago"
    return f"{value:.1f} days ago"


def format_status(status: dict) -> list[str]:
    """Human-readable lines; WARNING lines last so they are what a glance lands on."""
    lines = [f"spsbot status at {status['now']} (schedule: every {status['period_days']} days)", ""]
    lines.append("Sources:")
    for s in status["sources"]:
        run = s["last_run"]
        if run is None:
            lines.append(f"  {s['source']:<15} never ran")
            continue
        counts = ", ".join(f"{run[k]} {k}" for k in ("new", "updated") if run.get(k) is not None)
        duration = f", {run['duration_s']:.1f}s" if run.get("duration_s") is not None else ""
        lines.append(f"  {s['source']:<15} last run {run['started']} {run['status']}{duration}"
                     f"{' (' + counts + ')' if counts else ''}")
        if run.get("error"):
            lines.append(f"  {'':<15} error: {shorten(run['error'], 200)}")
        lines.append(f"  {'':<15} last success {_days(s['last_success_age_days'])}; "
                     f"newest item {_days(s['newest_item_age_days'])}")
    for run in status.get("commands") or []:
        error = f" ({shorten(run['error'], 120)})" if run.get("error") else ""
        lines.append(f"Last {run['command']}: {run['started']} {run['status']}{error}")
    items = status["items"]
    lines.append(f"Store: {items.get('paper', 0)} papers, {items.get('trial', 0)} trials")
    retrying = status.get("retrying_deliveries") or 0
    lines.append(f"Deliveries: {status['pending_deliveries']} pending"
                 + (f" ({retrying} retried next run after an error)" if retrying else "")
                 + f", {status['failed_deliveries']} failed for good")
    subs = ", ".join(f"{n} {state}" for state, n in status["subscribers"].items()) or "none"
    lines.append(f"Subscribers: {subs}")
    lines.extend(_quarantine_lines(status.get("quarantine") or {}))
    integrity = status.get("integrity") or {}
    if integrity:
        lines.append(f"Database: {integrity['check']} {'ok' if integrity['ok'] else 'FAILED: ' + integrity['result']}")
    if integrity and not integrity["ok"]:
        lines.append("ERROR: the database fails PRAGMA quick_check; `spsbot run` will not send from it "
                     "(restore a backup, or rebuild it with sqlite3 .recover)")
    if status["warnings"]:
        lines.append("")
        lines.extend(f"WARNING: {w}" for w in status["warnings"])
    if not status.get("problems") and not status["stale"]:
        lines.append("OK: every source succeeded within the last "
                     f"{status['stale_after_days']} days")
    return lines


def _quarantine_lines(held: dict) -> list[str]:
    if not held.get("count"):
        return ["Quarantine: empty"]
    sources = ", ".join(f"{n} {source}" for source, n in held["by_source"].items())
    lines = [f"Quarantine: {held['count']} record(s) could not be parsed or stored ({sources}); "
             f"everything else was stored. PubMed records are asked for again every run, "
             f"ClinicalTrials.gov studies when the registry next updates them"]
    for row in held["records"]:
        days = row.get("held_days")
        for_how_long = "" if days is None else f"held {int(days)} day{'' if int(days) == 1 else 's'} "
        lines.append(f"  {row['source']:<15} {row.get('url') or row['record_id']}: {row['error'][:140]} "
                     f"({for_how_long}since {row['first_seen'][:10]}, {row['attempts']} attempt(s))")
    if held["count"] > len(held["records"]):
        lines.append(f"  … and {held['count'] - len(held['records'])} more (spsbot status --json)")
    return lines


def status_json(status: dict) -> str:
    return json.dumps(status, indent=2, sort_keys=True, ensure_ascii=False)
