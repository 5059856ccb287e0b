"""Schema as data, applied as numbered migrations.

Each migration is a function of the database, run once, in order, inside a transaction, and
recorded in ``_migrations``. Never edit a migration that has shipped: append a new one. A database
that records a migration this version does not know was written by a newer spsbot: it is refused
(``SchemaError``) rather than used half-understood.
"""

from __future__ import annotations

import sqlite_utils

from bot.clock import now_iso
from bot.errors import UserError


def m001_core(db: sqlite_utils.Database) -> None:
    """Items (papers and trials), full-text search, runs and incremental source state."""
    db["items"].create({
        "id": str,              # natural key: pmid:N, nct:NCT…, doi:…, feed:<hash>
        "kind": str,            # paper | trial
        "sources": str,         # JSON list of sources that delivered it: pubmed, ctgov, feed:<name>
        "pmid": str, "doi": str, "pmcid": str, "nct_id": str,
        "title": str, "abstract": str,
        "abstract_sections": str,  # JSON [{"label":…, "text":…}]
        "authors": str,         # JSON list of display names ("Dalakas MC", "Canadian … Network")
        "journal": str,
        "pub_date": str,        # ISO, as precise as the source: 2024, 2024-05, 2024-05-17
        "pub_year": int,
        "entrez_date": str,     # PubMed's Entrez date (ISO) or the trial's first-posted date
        "pub_types": str, "mesh": str, "keywords": str,  # JSON lists
        "nct_ids": str,         # JSON list of NCT ids the record itself names (not its references)
        "url": str,
        "extra": str,           # JSON: kind-specific fields (trial status, phases, …; feed entry data)
        "norm_title": str,      # lower-cased, punctuation-free title for matching feed ↔ PubMed
        "content_hash": str,    # hash of what ranking reads (title, abstract, types, mesh, keywords)
        "first_seen": str, "last_seen": str, "updated_at": str,
    }, pk="id", not_null={"kind", "title"})
    for column in ("pmid", "doi", "nct_id", "norm_title", "first_seen", "kind"):
        db["items"].create_index([column])
    # save_items matches DOIs case-insensitively (lower(doi) = ?): without this, a full scan per record.
    db.execute("CREATE INDEX idx_items_lower_doi ON items(lower(doi))")
    # Only items merged from a preprint carry extra.other_dois: a small partial index to find them.
    db.execute("""CREATE INDEX idx_items_other_dois ON items(kind) WHERE instr(extra, '"other_dois"') > 0""")
    db["items"].enable_fts(["title", "abstract"], create_triggers=True, tokenize="porter")

    db["runs"].create({
        "id": int, "command": str, "source": str, "started": str, "finished": str,
        "duration_s": float, "status": str,  # running | ok | partial | failed | nothing_new
        "counts": str,          # JSON {"fetched": n, "new": n, "updated": n, ...}
        "error": str,
    }, pk="id")
    db["runs"].create_index(["source", "started"])

    db["source_state"].create({
        "key": str,             # source + ":" + hash of the query, so a new query starts afresh
        "source": str, "query": str,
        "last_success": str,    # when the last successful fetch started (UTC ISO)
        "window_end": str,      # the upper bound of the last fetched window
        "extra": str,
    }, pk="key")


def m002_trials(db: sqlite_utils.Database) -> None:
    """Trial versions, field-level change events and paper ↔ trial links."""
    # One row per distinct tracked-field snapshot of a trial. Not unique on (nct_id, hash): a
    # trial may go back to an earlier state (suspended → recruiting again) and that is a version.
    db["trial_versions"].create({
        "id": int, "nct_id": str,
        "version_date": str,    # the registry's last update posted date of this version
        "fetched_at": str,
        "content_hash": str,    # hash of the normalised tracked-field snapshot
        "data": str,            # JSON: the normalised tracked-field snapshot
    }, pk="id")
    db["trial_versions"].create_index(["nct_id", "id"])
    db["trial_changes"].create({
        "id": int, "nct_id": str, "field": str,
        "old": str, "new": str,  # display text of the normalised values ("" = not given)
        "detected_at": str, "version_date": str,
        "version_id": int,      # the trial_versions row that introduced the change
    }, pk="id")
    db["trial_changes"].create_index(["nct_id", "detected_at"])
    db["trial_changes"].create_index(["detected_at"])
    db["links"].create({
        "paper_id": str, "trial_id": str,
        "evidence": str,        # databank | abstract | registry_reference
        "detail": str,          # registry reference type (RESULT, BACKGROUND, DERIVED) where known
        "created_at": str,
    }, pk=("paper_id", "trial_id", "evidence"))
    db["links"].create_index(["trial_id"])


def m003_ranking(db: sqlite_utils.Database) -> None:
    """Embedding cache, scores with their evidence, curator feedback."""
    db["embeddings"].create({"content_hash": str, "model": str, "dims": int, "vector": bytes,
                             "created_at": str}, pk=("content_hash", "model"))
    db["scores"].create({
        "item_id": str, "relevance": float,
        "relevant": int,        # 1 if relevance is above the data-chosen threshold
        "themes": str,          # JSON {theme: score}
        "labels": str,          # JSON [theme, …] judged present
        "why": str,             # short human-readable reason
        "evidence": str,        # JSON {theme: {"sentence": …, "terms": [...]}}
        "scored_hash": str,     # content hash + ranker version: unchanged items are not re-scored
        "scored_at": str,
    }, pk="item_id")
    db["feedback"].create({"id": int, "item_id": str, "label": str, "theme": str,
                           "created_at": str, "note": str}, pk="id")
    db["feedback"].create_index(["item_id"])


def m004_digest(db: sqlite_utils.Database) -> None:
    """Subscribers, digests, what each subscriber was sent, and the delivery outbox."""
    db["subscribers"].create({
        "id": int, "email": str, "name": str,
        "themes": str,          # JSON list, null = all themes
        "frequency": str,       # weekly | daily | monthly
        "max_items": int, "send_empty": int,
        "status": str,          # active | unsubscribed | bouncing
        "bounces": int, "created_at": str, "updated_at": str,
    }, pk="id")
    db["subscribers"].create_index(["email"], unique=True)
    db["digests"].create({
        "id": int, "subscriber_id": int, "period_start": str, "period_end": str,
        "created_at": str, "subject": str, "html": str, "text": str, "item_count": int,
        "data": str,            # JSON of the built digest (sections), so the archive can re-render it
    }, pk="id")
    db["digest_items"].create({"digest_id": int, "item_id": str, "section": str, "theme": str,
                               "position": int}, pk=("digest_id", "item_id", "section"))
    # One row per (subscriber, item) ever sent: the guarantee that nobody gets an item twice.
    db["sent_items"].create({"subscriber_id": int, "item_id": str, "digest_id": int, "sent_at": str},
                            pk=("subscriber_id", "item_id"))
    db["deliveries"].create({
        "id": int, "digest_id": int, "subscriber_id": int, "message_id": str,
        "status": str,          # pending | sent | failed | bounced
        "attempts": int, "last_error": str, "created_at": str, "sent_at": str,
    }, pk="id")
    db["deliveries"].create_index(["digest_id", "subscriber_id"], unique=True)
    db["deliveries"].create_index(["status"])
    db["digests"].create_index(["subscriber_id", "period_end"])
    # Small key/value settings, e.g. the unsubscribe-token secret generated on first use.
    db["settings"].create({"key": str, "value": str, "updated_at": str}, pk="key")


# Views for Datasette and any SQLite tool (m005). Plain SQL over the tables above.
VIEWS = {
    # Papers the ranker judged relevant, best first, with their theme labels and reason.
    "relevant_papers": """
        SELECT items.id, items.title, items.journal, items.pub_date, items.pub_year, items.doi, items.pmid,
               items.url, scores.relevance, scores.labels, scores.why, items.first_seen
        FROM items JOIN scores ON scores.item_id = items.id
        WHERE items.kind = 'paper' AND scores.relevant = 1
        ORDER BY scores.relevance DESC""",
    # Every trial with its most recent recorded change (NULLs when none was recorded yet).
    "trials_last_change": """
        SELECT items.id, items.nct_id, items.title,
               json_extract(items.extra, '$.overall_status') AS overall_status,
               change.field AS last_change_field, change.old AS last_change_old,
               change.new AS last_change_new, change.detected_at AS last_change_at, items.url
        FROM items LEFT JOIN trial_changes AS change ON change.id = (
            SELECT c.id FROM trial_changes AS c WHERE c.nct_id = items.nct_id
            ORDER BY c.detected_at DESC, c.id DESC LIMIT 1)
        WHERE items.kind = 'trial'
        ORDER BY change.detected_at IS NULL, change.detected_at DESC, items.id""",
    # The entries of the latest public issue (subscriber_id NULL; none before the first run that
    # built one): a subscriber's own digest is theirs alone, never shown here. Entries that are
    # not items ("change:N", notices) keep their key in item_id and have no title.
    "latest_digest": """
        SELECT digests.id AS digest_id, digests.subscriber_id, digests.period_start, digests.period_end,
               digests.created_at, digest_items.section, digest_items.theme, digest_items.position,
               digest_items.item_id, items.kind, items.title, items.url, scores.relevance
        FROM digests
        JOIN digest_items ON digest_items.digest_id = digests.id
        LEFT JOIN items ON items.id = digest_items.item_id
        LEFT JOIN scores ON scores.item_id = items.id
        WHERE digests.id = (SELECT id FROM digests WHERE subscriber_id IS NULL
                            ORDER BY period_end DESC, id DESC LIMIT 1)
        ORDER BY digest_items.section, digest_items.position""",
}


def m005_views(db: sqlite_utils.Database) -> None:
    """Datasette-friendly views: relevant papers, trials with their last change, latest digest."""
    for name, sql in VIEWS.items():
        db.execute(f"DROP VIEW IF EXISTS {name}")
        db.execute(f"CREATE VIEW {name} AS {sql.strip()}")


# --- m006 (issue 11, completeness): the create date, and quarantined records -------------------

def m006_create_date_and_quarantine(db: sqlite_utils.Database) -> None:
    """``items.create_date`` and the ``quarantine`` table.

    Until now ``entrez_date`` held PubMed's *create* date (PubStatus "entrez", CRDT) for papers
    and the first-posted date for trials. From here on ``entrez_date`` is the Entrez date proper
    (PubStatus "pubmed", EDAT: back-dated to the publication date for citations added more than
    12 months late) and ``create_date`` the day the record entered its source (CRDT for PubMed,
    first posted for ClinicalTrials.gov). Existing rows keep what they held as their create date;
    a trial's first-posted date is no Entrez date, so it moves out of ``entrez_date``. A paper's
    ``entrez_date`` is corrected the next time PubMed serves the record.
    """
    db["items"].add_column("create_date", str)
    db.execute("UPDATE items SET create_date = entrez_date")
    db.execute("UPDATE items SET entrez_date = NULL WHERE kind = 'trial'")
    # One row per record a source served that could not be parsed or stored: its batch or page is
    # stored without it, and ``spsbot status`` lists it until a later fetch parses it.
    db["quarantine"].create({
        "source": str,          # pubmed | clinicaltrials
        "record_id": str,       # PMID or NCT id, or where it sat ("retstart 12 of 2026/11/14-2026/11/21")
        "error": str,           # one line: why it was refused
        "first_seen": str, "last_seen": str,
        "attempts": int,        # how many fetches refused it
        "resolved_at": str,     # set when a later fetch stored it
    }, pk=("source", "record_id"))
    db["quarantine"].create_index(["resolved_at"])


# --- migration 007 (issue 12): secrets and supply chain ------------------------------------------

def m007_unsubscribe_key_out_of_db(db: sqlite_utils.Database) -> None:
    """Move the unsubscribe signing key an older spsbot kept in ``settings`` into the 0600 file
    beside the database (``bot.store.keyfile``), so links already sent keep working, and wipe it
    from the file's pages (secure_delete; ``ensure_db_shape`` then checkpoints the WAL)."""
    from bot.store.keyfile import adopt_key
    rows = db.execute("SELECT value FROM settings WHERE key = 'unsubscribe_secret'").fetchall()
    if not rows or not rows[0][0]:
        return
    adopt_key(db, rows[0][0])
    db.execute("PRAGMA secure_delete = ON")  # the freed cell is overwritten, not just unlinked
    db.execute("DELETE FROM settings WHERE key = 'unsubscribe_secret'")


def m0071_ranker_models(db: sqlite_utils.Database) -> None:
    """The embedding model files each ranker state was computed with (supply-chain record)."""
    db["ranker_models"].create({
        "fingerprint": str,     # the ranker state scores carry (scores.scored_hash suffix)
        "model": str,           # the model name as configured ("all-MiniLM-L6-v2" = the packaged one)
        "files": str,           # JSON {relative path: sha256} of the model's files
        "verified": int,        # 1 when the files matched the pinned hashes (the packaged model)
        "recorded_at": str,
    }, pk="fingerprint")


def m009_web(db: sqlite_utils.Database) -> None:
    """The web front: sign-ups awaiting confirmation, subscribers' votes, curators."""
    # One row per sign-up request (a web form submission). The address becomes a subscriber only
    # when the signed link in the confirmation e-mail is used (double opt-in). The row is also the
    # outbox of that e-mail and what the per-address rate limit counts.
    db["signups"].create({
        "id": int, "email": str, "name": str,
        "themes": str,          # JSON list, null = all themes
        "kind": str,            # confirm (a new or returning address) | manage (already subscribed)
        "created_at": str,
        "mail_status": str,     # pending | sent | failed | skipped (over a rate limit: no e-mail)
        "mail_attempts": int, "mail_error": str, "mail_sent_at": str,
        "confirmed_at": str,
    }, pk="id")
    db.execute("CREATE INDEX idx_signups_lower_email ON signups(lower(email), created_at)")
    db["signups"].create_index(["mail_status"])
    db["signups"].create_index(["created_at"])
    db["subscribers"].add_column("curator", int)        # 1: their feedback is a curator label
    db["subscribers"].add_column("confirmed_at", str)   # when a web sign-up was confirmed
    # Subscribers' relevant / not relevant votes from the digest's feedback links: kept apart from
    # the curators' labels (``feedback``); the ranker gives them a lower weight. One per
    # (subscriber, item); a second click changes the vote.
    db["votes"].create({"subscriber_id": int, "item_id": str,
                        "vote": str,     # relevant | irrelevant
                        "created_at": str, "updated_at": str}, pk=("subscriber_id", "item_id"))
    db["votes"].create_index(["item_id"])


def m0091_web_hardening(db: sqlite_utils.Database) -> None:
    """Sign-ups counted per mailbox (``signups.mailbox``, see ``subscribers.mailbox_key``), and
    ``latest_digest`` showing public issues only (it fell back to one subscriber's digest)."""
    from bot.store.subscribers import mailbox_key
    db["signups"].add_column("mailbox", str)
    for signup_id, email in db.execute("SELECT id, email FROM signups").fetchall():
        db.execute("UPDATE signups SET mailbox = ? WHERE id = ?", [mailbox_key(email or ""), signup_id])
    db.execute("CREATE INDEX idx_signups_mailbox ON signups(mailbox, created_at)")
    db.execute("DROP VIEW IF EXISTS latest_digest")
    db.execute(f"CREATE VIEW latest_digest AS {VIEWS['latest_digest'].strip()}")


def m010_subscriber_style(db: sqlite_utils.Database) -> None:
    """The register of a subscriber's digest: "plain" (for patients and carers) or "clinical"
    (null, the digest as it always was), chosen on sign-up and in the preferences."""
    db["subscribers"].add_column("style", str)
    db["signups"].add_column("style", str)


MIGRATIONS = [
    ("001_core", m001_core),
    ("002_trials", m002_trials),
    ("003_ranking", m003_ranking),
    ("004_digest", m004_digest),
    ("005_views", m005_views),
    ("006_create_date_and_quarantine", m006_create_date_and_quarantine),
    ("007_unsubscribe_key_out_of_db", m007_unsubscribe_key_out_of_db),
    ("0071_ranker_models", m0071_ranker_models),
    ("009_web", m009_web),
    ("0091_web_hardening", m0091_web_hardening),
    ("010_subscriber_style", m010_subscriber_style),
]


class SchemaError(UserError, RuntimeError):
    """The database cannot be used by this version of spsbot (one line saying why)."""


def ensure_db_shape(db: sqlite_utils.Database) -> list[str]:
    """Apply every migration not yet applied; return the names applied now."""
    if "_migrations" not in db.table_names():
        db["_migrations"].create({"name": str, "applied_at": str}, pk="name")
    done = {row["name"] for row in db["_migrations"].rows}
    unknown = sorted(done - {name for name, _ in MIGRATIONS})
    if unknown:
        raise SchemaError(f"the database was written by a newer spsbot (unknown migration "
                          f"{', '.join(unknown)}); upgrade spsbot to use it")
    applied = []
    for name, migrate in MIGRATIONS:
        if name in done:
            continue
        with db.atomic():  # one transaction per migration: all of it or none
            migrate(db)
            db["_migrations"].insert({"name": name,
                                      "applied_at": now_iso()})
        applied.append(name)
    if applied and db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        # Copy the migrated pages into the main file and empty the WAL: nothing a migration
        # removed (the old unsubscribe key) lingers in old WAL frames.
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return applied
