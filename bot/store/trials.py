"""Trials in the store: versions, field-level change events, and paper ↔ trial links.

``save_trials`` stores trial records (from ``bot.sources.clinicaltrials.parse_study``) as items and
compares each one's normalised tracked-field snapshot (``tracked_snapshot`` of its ``extra``) with
the latest stored version: a real change writes a new ``trial_versions`` row and one
``trial_changes`` row per changed field. The first sight of a trial is a version without events
(a new trial shows by its ``first_seen``).

Links (``links`` table) join a paper to a trial with the evidence: ``databank`` (the PubMed
record's DataBankList), ``abstract`` (the NCT id is in its title/abstract) or
``registry_reference`` (the trial's registry entry cites the paper's PMID; ``detail`` holds the
reference type RESULT/BACKGROUND/DERIVED). NCT ids a paper only cites in its reference list are
never stored in ``nct_ids`` by the parsers and are never read here.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Iterable

import sqlite_utils

from bot.store import loads, now_iso, save_items
from bot.store.columns import in_chunks

__all__ = ["TRACKED_FIELDS", "tracked_snapshot", "save_trials", "snapshot_hash", "diff_snapshots",
           "latest_snapshots", "display_value",
           "link_papers_and_trials", "paper_trial_mentions", "trial_changes_since", "tracked_trials",
           "links_for", "links_since", "change_events_since", "stored_trial_ids", "paper_trial_links"]

NCT_RE = re.compile(r"\bNCT\s?(\d{8})\b", re.I)

# The fields whose change becomes a change event, in display order.
TRACKED_FIELDS = (
    "overall_status", "last_known_status", "why_stopped", "phases", "enrollment", "enrollment_type",
    "start_date", "primary_completion_date", "completion_date", "results_posted",
    "arms", "interventions", "locations_count",
)


# Tracked text fields ClinicalTrials.gov writes in markdown → the key of ``extra`` holding the value
# as written. Versions stored before markdown was read as text hold that form: the same value.
AS_WRITTEN = {"why_stopped": "why_stopped_markdown"}


def _date_text(value) -> str:
    """A parsed trial date (``{"date", "type"}``) as one comparable string: '2024-05 (estimated)'."""
    if not isinstance(value, dict) or not value.get("date"):
        return ""
    kind = value.get("type")
    return f"{value['date']} ({kind.lower()})" if kind else value["date"]


def tracked_snapshot(extra: dict) -> dict:
    """The tracked fields of a parsed trial's ``extra``, normalised so that equal values compare equal.

    Strings arrive whitespace-collapsed from the parser; lists whose order means nothing (phases,
    arms, interventions) are sorted and de-duplicated; dates carry their ACTUAL/ESTIMATED type.
    """
    def sorted_unique(values):
        return sorted({v for v in values if v})

    enrollment = extra.get("enrollment")
    return {
        "overall_status": extra.get("overall_status") or "",
        "last_known_status": extra.get("last_known_status") or "",
        "why_stopped": extra.get("why_stopped") or "",
        "phases": sorted_unique(extra.get("phases") or []),
        "enrollment": (int(enrollment) if isinstance(enrollment, (int, float, str)) and str(enrollment).isdigit()
                       else None),
        "enrollment_type": extra.get("enrollment_type") or "",
        "start_date": _date_text(extra.get("start_date")),
        "primary_completion_date": _date_text(extra.get("primary_completion_date")),
        "completion_date": _date_text(extra.get("completion_date")),
        # One field for "results posted": the date when the registry gives it, else yes/"".
        "results_posted": _date_text(extra.get("results_first_posted")) or ("yes" if extra.get("has_results") else ""),
        "arms": sorted_unique(f"{a.get('type') or 'ARM'}: {a['label']}" for a in extra.get("arms") or []),
        "interventions": sorted_unique(f"{i.get('type') or 'OTHER'}: {i['name']}"
                                       for i in extra.get("interventions") or []),
        "locations_count": int(extra.get("locations_count") or 0),
    }


def snapshot_hash(snapshot: dict) -> str:
    """Stable hash of a normalised snapshot (key order never matters)."""
    text = json.dumps(snapshot, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def display_value(value) -> str:
    """A tracked value as the text stored in trial_changes.old/new and shown to people."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def diff_snapshots(old: dict, new: dict, as_written: dict | None = None) -> list[tuple[str, str, str]]:
    """(field, old text, new text) for each tracked field whose normalised value differs.

    A field the old snapshot does not have (tracked since a later release) is not a change, nor
    an old value equal to the new one as the source wrote it (``as_written``: field → text; a
    version stored before markdown was read as text holds ``R\\&D`` for today's ``R&D``).
    """
    changes = []
    for name in TRACKED_FIELDS:
        if name not in old or name not in new:
            continue
        if old[name] != new[name] and old[name] != (as_written or {}).get(name, new[name]):
            changes.append((name, display_value(old[name]), display_value(new[name])))
    return changes


def _as_written(extra: dict) -> dict:
    """Field → the source's own form of its value, where the record has one."""
    return {name: extra[key] for name, key in AS_WRITTEN.items() if extra.get(key)}


def latest_snapshots(db: sqlite_utils.Database) -> dict[str, tuple[str, dict]]:
    """NCT id → (content hash, snapshot) of its latest stored version, in one query."""
    rows = db.execute(
        "select nct_id, content_hash, data from trial_versions where id in "
        "(select max(id) from trial_versions group by nct_id)").fetchall()
    return {nct_id: (digest, json.loads(data)) for nct_id, digest, data in rows}


def save_trials(db: sqlite_utils.Database, records: Iterable[dict], now: str | None = None,
                link: bool = True) -> dict:
    """Store trial records and their versions; record a change event per changed tracked field.

    Returns counts: new / updated / unchanged (items), versions (new version rows), changes
    (events), links (new paper ↔ trial links), ids (item ids in input order).
    """
    records = list(records)
    now = now or now_iso()
    # One transaction: an item is never stored without its version (a crash leaves neither).
    with db.atomic():
        counts = save_items(db, records, source="ctgov", now=now)
        counts.update(versions=0, changes=0, links=0)
        latest = latest_snapshots(db)
        for record in records:
            nct_id = record["nct_id"].upper()
            snapshot = tracked_snapshot(record.get("extra") or {})
            digest = snapshot_hash(snapshot)
            previous = latest.get(nct_id)
            if previous and previous[0] == digest:
                continue
            version_date = record.get("version_date")
            version_id = db["trial_versions"].insert({
                "nct_id": nct_id, "version_date": version_date, "fetched_at": now, "content_hash": digest,
                "data": json.dumps(snapshot, sort_keys=True, ensure_ascii=False)}, alter=True).last_pk
            counts["versions"] += 1
            if previous:
                changes = diff_snapshots(previous[1], snapshot, _as_written(record.get("extra") or {}))
                db["trial_changes"].insert_all([
                    {"nct_id": nct_id, "field": name, "old": old, "new": new, "detected_at": now,
                     "version_date": version_date, "version_id": version_id}
                    for name, old, new in changes], alter=True)
                counts["changes"] += len(changes)
            latest[nct_id] = (digest, snapshot)
        if link:
            counts["links"] = link_papers_and_trials(db, item_ids=counts["ids"], now=now)
    return counts


# --- links ------------------------------------------------------------------------------------

def paper_trial_mentions(paper: dict) -> list[tuple[str, str]]:
    """(NCT id, evidence) pairs a stored paper row names in its own record.

    Evidence is ``abstract`` when the id is in the title/abstract text, else ``databank`` (the
    parsers fill ``nct_ids`` only from DataBankList and the abstract). A parser may say exactly
    which ids came from the DataBankList in ``extra["databank_nct_ids"]``.
    """
    text = " ".join(filter(None, [paper.get("title"), paper.get("abstract")]))
    in_text = {f"NCT{m}" for m in NCT_RE.findall(text)}
    extra = loads(paper.get("extra"), {}) or {}
    databank = {str(n).upper() for n in extra.get("databank_nct_ids") or []}
    listed = {str(n).upper().replace(" ", "") for n in loads(paper.get("nct_ids"), []) or []}
    pairs = {(n, "abstract") for n in in_text}
    pairs |= {(n, "databank") for n in databank}
    pairs |= {(n, "databank") for n in listed - in_text - databank}
    return sorted(pairs)


def link_papers_and_trials(db: sqlite_utils.Database, item_ids: Iterable[str] | None = None,
                           now: str | None = None) -> int:
    """Create the missing paper ↔ trial links; return how many are new.

    With ``item_ids``, only links touching those items are made (call it with the ids a fetch
    just stored: a paper arriving after its trial, or a trial after its paper, is linked then).
    """
    now = now or now_iso()
    wanted = set(item_ids) if item_ids is not None else None
    candidates: dict[tuple[str, str, str], str | None] = {}
    # Papers naming a trial. Only papers whose record lists an NCT id or whose text contains
    # "NCT" can; that keeps the scan small however many papers are stored.
    mentions = []
    for paper in db.query("select id, title, abstract, nct_ids, extra from items where kind = 'paper' "
                          "and (nct_ids is not null or abstract like '%NCT%' or title like '%NCT%')"):
        mentions += [(paper["id"], nct_id, evidence) for nct_id, evidence in paper_trial_mentions(paper)]
    trial_ids = _trial_item_ids(db, {nct_id for _, nct_id, _ in mentions})
    for paper_id, nct_id, evidence in mentions:
        if nct_id in trial_ids:
            candidates[(paper_id, trial_ids[nct_id], evidence)] = None
    # Trials whose registry entry cites a stored paper's PMID.
    for row in db.query("""
            select p.id as paper_id, t.id as trial_id, json_extract(r.value, '$.type') as type
            from items t, json_each(t.extra, '$.references') r
            join items p on p.kind = 'paper' and p.pmid = json_extract(r.value, '$.pmid')
            where t.kind = 'trial' and json_valid(t.extra)"""):
        candidates[(row["paper_id"], row["trial_id"], "registry_reference")] = row["type"]
    if wanted is not None:
        candidates = {k: v for k, v in candidates.items() if k[0] in wanted or k[1] in wanted}
    if not candidates:
        return 0
    before = db["links"].count
    with db.atomic():
        db["links"].insert_all(
            [{"paper_id": p, "trial_id": t, "evidence": e, "detail": detail, "created_at": now}
             for (p, t, e), detail in sorted(candidates.items())], ignore=True, alter=True)
    return db["links"].count - before


def _trial_item_ids(db: sqlite_utils.Database, nct_ids: set[str]) -> dict[str, str]:
    """NCT id → item id of the stored trials among ``nct_ids``."""
    found: dict[str, str] = {}
    for marks, chunk in in_chunks(sorted(nct_ids)):
        for row in db.query(f"select id, upper(nct_id) as nct_id from items where kind = 'trial' "
                            f"and upper(nct_id) in ({marks})", chunk):
            found[row["nct_id"]] = row["id"]
    return found


# --- queries for the CLI and the digest -------------------------------------------------------

def trial_changes_since(db: sqlite_utils.Database, since: str, until: str | None = None) -> list[dict]:
    """Change events detected at or after ``since`` (ISO date or timestamp), oldest first,
    each with the trial's title and url."""
    sql = ("select c.nct_id, i.title, i.url, c.field, c.old, c.new, c.detected_at, c.version_date "
           "from trial_changes c left join items i on i.id = 'nct:' || c.nct_id where c.detected_at >= ?")
    params = [since]
    if until:
        sql += " and c.detected_at < ?"
        params.append(until)
    sql += " order by c.detected_at, c.nct_id, c.id"
    return list(db.query(sql, params))


def change_events_since(db: sqlite_utils.Database, day: str) -> list[dict]:
    """Change events (with their ``id``) detected on or after ``day``, in the order detected."""
    names = ("id", "nct_id", "field", "old", "new", "detected_at")
    return [dict(zip(names, row)) for row in db.execute(
        "select id, nct_id, field, old, new, detected_at from trial_changes where detected_at >= ? order by id",
        [day])]


def stored_trial_ids(db: sqlite_utils.Database) -> set[str]:
    """The item ids (``nct:…``) of every stored trial."""
    return {row[0] for row in db.execute("select id from items where kind = 'trial'")}


def paper_trial_links(db: sqlite_utils.Database) -> list[tuple[str, str, str | None, str | None]]:
    """Every link as (paper id, trial id, evidence, detail); detail "" in a store older than it."""
    detail = "detail" if "detail" in db["links"].columns_dict else "''"
    return db.execute(f"select paper_id, trial_id, evidence, {detail} from links").fetchall()


def tracked_trials(db: sqlite_utils.Database) -> list[dict]:
    """Every stored trial with its status and its last change (if any), most recently changed first."""
    sql = """
        select i.nct_id, i.title, i.url, i.first_seen, i.last_seen,
               json_extract(i.extra, '$.overall_status') as status,
               json_extract(i.extra, '$.last_update_posted.date') as last_update_posted,
               (select count(*) from trial_changes c where c.nct_id = i.nct_id) as change_count,
               lc.detected_at as last_change_at, lc.field as last_change_field,
               lc.old as last_change_old, lc.new as last_change_new
        from items i
        left join trial_changes lc on lc.id = (select max(id) from trial_changes c2 where c2.nct_id = i.nct_id)
        where i.kind = 'trial'
        order by lc.detected_at is null, lc.detected_at desc, i.nct_id
    """
    return list(db.query(sql))


def links_for(db: sqlite_utils.Database, item_id: str) -> list[dict]:
    """Links touching one item, with the other side's id, kind and title."""
    sql = """
        select l.paper_id, l.trial_id, l.evidence, l.detail, l.created_at,
               case when l.paper_id = :id then l.trial_id else l.paper_id end as other_id,
               o.kind as other_kind, o.title as other_title
        from links l
        left join items o on o.id = case when l.paper_id = :id then l.trial_id else l.paper_id end
        where l.paper_id = :id or l.trial_id = :id
        order by l.paper_id, l.trial_id, l.evidence
    """
    return list(db.query(sql, {"id": item_id}))


def links_since(db: sqlite_utils.Database, since: str) -> list[dict]:
    """Links made at or after ``since``, with both sides' titles (for the digest's "reports on
    NCT…" lines), oldest first."""
    sql = """
        select l.paper_id, p.title as paper_title, p.url as paper_url,
               l.trial_id, t.nct_id, t.title as trial_title, l.evidence, l.detail, l.created_at
        from links l join items p on p.id = l.paper_id join items t on t.id = l.trial_id
        where l.created_at >= ? order by l.created_at, l.paper_id, l.trial_id
    """
    return list(db.query(sql, [since]))
