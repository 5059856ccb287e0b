"""Public pages: the home page (topic, sign-up form, archive), one archived issue, the Atom feed,
and search over the relevant items. Nothing here depends on who is asking."""

from __future__ import annotations

import json
import logging
import re
import time

from flask import Blueprint, Response, abort, render_template, request
from markupsafe import Markup

from bot.store.status import ping
from bot.web.context import bad_request, busy, limit, state

log = logging.getLogger(__name__)
bp = Blueprint("public", __name__)

_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")  # ASCII digits: \d would take "²" and "①"
_PAGE = re.compile(r"^[0-9]{1,2}$")
MAX_QUERY_CHARS = 300
MAX_PAGES = 10       # deeper than 10 pages of the relevant items is a job for `spsbot search`
SEARCH_SECONDS = 2.0  # the SQL of one web search is interrupted after this ([web] search_seconds)
EMBED_MAX = 50       # items without a vector a web search embeds on the fly (the weekly run does the rest)
BUSY_RETRY = 5       # seconds a visitor is asked to wait when the search slots are all taken
FEED_ISSUES = 20


@bp.get("/")
def home():
    from bot.store.digests import public_issue_index
    issues = [issue_link(row) for row in public_issue_index(state().db())]
    config = state().config
    return render_template("home.html", issues=issues, themes=theme_choices(config), form={}, error=None)


def theme_choices(config) -> list[dict]:
    """Each theme in plain words first (the profile's ``plain_title``/``plain_description``), with
    its clinical title, for the home and preferences pages."""
    return [{"name": t.name, "title": t.title or t.name, "description": t.description,
             "plain_title": t.plain_title or t.title or t.name, "plain_description": t.plain_description}
            for t in config.themes]


def _period(row: dict) -> str:
    """'10–16 Nov 2026': the days an issue covers, as its subject line says them (the period
    starts the day after the previous issue's end)."""
    from bot.digest.render import covered_period
    return covered_period(row["period_start"], row["period_end"])


def issue_link(row: dict) -> dict:
    return {"day": row["period_end"][:10], "period": _period(row), "subject": row["subject"],
            "count": row["item_count"]}


@bp.get("/issues/<day>")
def issue(day: str):
    from bot.digest.render import subject_for
    from bot.store.digests import public_issue_on
    if not _DAY.match(day):
        bad_request("An issue is named by its date, like /issues/2026-11-21.")
    row = public_issue_on(state().db(), day)
    if row is None:
        abort(404)
    data = json.loads(row["data"])
    return render_template("issue.html", d=data, o=data["overview"], subject=subject_for(data),
                           period=_period(row))


@bp.get("/feed.atom")
def feed():
    from bot.digest.archive import archive_issue, render_feed
    from bot.store.digests import public_issue_on, public_issue_index
    db, base = state().db(), state().base_url + "/"
    issues = []
    for entry in public_issue_index(db, limit=FEED_ISSUES):
        row = public_issue_on(db, entry["period_end"][:10])
        if row is None or row["id"] != entry["id"]:
            continue  # an older issue of the same day: the page shows the latest one
        path = f"issues/{row['period_end'][:10]}"
        issues.append(archive_issue(row, json.loads(row["data"]), state().config, path, base + path))
    return Response(render_feed(state().config, issues, base, home=base), mimetype="application/atom+xml")


@bp.get("/feed")
def feed_page():
    """What a feed is and how to follow it: the address to copy into a feed reader."""
    return render_template("feed.html", feed_url=state().base_url + "/feed.atom")


@bp.get("/favicon.ico")
def favicon():
    """No icon (browsers ask for one on every site): an empty answer instead of a 404 page."""
    return Response(status=204, headers={"Cache-Control": "public, max-age=86400"})


@bp.get("/healthz")
def healthz():
    ping(state().db())
    return Response("ok\n", mimetype="text/plain")


@bp.get("/search")
def search():
    query = request.args.get("q", "")
    if not query.strip():
        return render_template("search.html", query="", hits=[], page=1, more=False, notes=[], error=None)
    if len(query) > MAX_QUERY_CHARS:
        bad_request(f"That search is too long; keep it under {MAX_QUERY_CHARS} characters.")
    page = _page(request.args.get("page", "1"))
    limit("search", int(state().setting("searches_per_client_minute", 30)), 60)
    per_page = int(state().setting("results_per_page", 10))
    result, error = _run_search(query, page * per_page + 1)
    if error:
        return render_template("search.html", query=query, hits=[], page=page, more=False, notes=[],
                               error=error), 400
    hits = result.hits[(page - 1) * per_page:page * per_page]
    more = len(result.hits) > page * per_page and page < MAX_PAGES
    neighbours = _neighbours(query) if not result.hits and page == 1 else []
    return render_template("search.html", query=query, hits=_displayed(hits, result.match), page=page, more=more,
                           first_rank=(page - 1) * per_page + 1, notes=[], error=None,
                           neighbours=_displayed(neighbours, ""))


def _page(value: str) -> int:
    if not _PAGE.match(value) or not 1 <= int(value) <= MAX_PAGES:
        bad_request(f"The page must be a number from 1 to {MAX_PAGES}.")
    return int(value)


def _neighbours(query: str, how_many: int = 5) -> list[dict]:
    """When nothing matched: the items closest in meaning, however far (none without semantic search)."""
    from werkzeug.exceptions import ServiceUnavailable
    if not state().setting("semantic_search", True):
        return []
    try:
        result, error = _run_search(query, how_many, min_similarity=-1.0)
    except ServiceUnavailable:  # another search took the slot since ours: the answer stands without them
        return []
    return result.hits if result and not error else []


def _run_search(query: str, how_many: int, **options):
    """Hybrid search (``bot.search``, as ``spsbot search --relevant``) -> (result, None) or
    (None, what to change in the query).

    Its cost is bounded whatever the store's size: few, long prefixes (``bot.search.hybrid``),
    and a time budget enforced inside SQLite (``[web] search_seconds``). Searches take one of
    ``[web] search_slots`` slots (default 1) without waiting: when all are taken the answer is a
    503 at once, so searches never hold the worker threads that sign-up, unsubscribe and
    /healthz need.
    """
    from bot.search.hybrid import Filters, SearchError, TooBroad, search
    st = state()
    if not st.search_slots.acquire(blocking=False):
        busy("Another search is running. Please try again in a few seconds.", BUSY_RETRY)
    started = time.monotonic()
    try:
        semantic = bool(st.setting("semantic_search", True))
        result = search(st.db(), query, Filters(relevant_only=True), limit=how_many, semantic=semantic,
                        embedder_loader=st.search_embedder if semantic else None, any_word=True,
                        budget=float(st.setting("search_seconds", SEARCH_SECONDS)), embed_max=EMBED_MAX, **options)
    except SearchError as e:  # TooBroad included: the message says how to narrow the query
        if isinstance(e, TooBroad):
            log.info("web search: too broad after %.0f ms", (time.monotonic() - started) * 1000)
        return None, f"{str(e)[:1].upper()}{str(e)[1:]}."
    finally:
        st.search_slots.release()
    log.info("web search: %d results in %.0f ms", len(result.hits), (time.monotonic() - started) * 1000)
    return result, None


# Where FTS5's snippet() marks the matched words: private-use characters, so the snippet can be
# escaped whole and only then the markers turned into <mark> tags.
_MARK_START, _MARK_END = "\ue000", "\ue001"


def _displayed(hits: list[dict], match: str) -> list[dict]:
    """Results with their links, theme titles and the snippet where their words matched."""
    from bot.store.search import fts_snippets
    snippets = fts_snippets(state().db(), match, [h["id"] for h in hits], _MARK_START, _MARK_END) if match else {}
    return [_display(h, snippets.get(h["id"])) for h in hits]


def marked(snippet: str) -> Markup:
    """The snippet escaped, its matched words in <mark>: every piece of text is escaped (and
    cleaned of control and bidi characters) on its own, so only our tags are markup."""
    out, inside = [], False
    for part in re.split(f"({_MARK_START}|{_MARK_END})", snippet):
        if part in (_MARK_START, _MARK_END):
            if (part == _MARK_START) != inside:  # a stray marker is dropped
                out.append(Markup("<mark>" if part == _MARK_START else "</mark>"))
                inside = not inside
            continue
        text = "".join(c for c in re.sub(r"\s", " ", part) if c.isprintable())
        out.append(Markup.escape(re.sub(" {2,}", " ", text)))
    return Markup("").join(out) + (Markup("</mark>") if inside else "")


def _display(hit: dict, snippet: str | None = None) -> dict:
    """A result with its links (PubMed, DOI, ClinicalTrials.gov), theme titles (plain words) and
    snippet (None: found by meaning, not by its words)."""
    from bot.digest.entries import clean_text, display_date, humanize_value, item_links
    from bot.store import get_item
    item = get_item(state().db(), hit["id"]) or {}
    titles = {t.name: t.plain_title or t.title or t.name for t in state().config.themes}
    # cleaned as in the digests and the archive: no control, zero-width or bidi characters
    return {"title": clean_text(hit["title"]) or hit["id"], "kind": hit["kind"],
            "journal": clean_text(hit.get("journal")),
            "date": display_date(hit.get("date")) or hit.get("year"), "status": humanize_value(hit.get("status")),
            "labels": [titles.get(label) or clean_text(label) for label in hit.get("labels") or []],
            "links": item_links(item) if item else [],
            "snippet": marked(snippet) if snippet else None}
