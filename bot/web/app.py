"""The Flask application behind ``spsbot serve``: security headers, error handlers, URL map.

``create_app(config, db_path)`` builds the app; the routes live in ``bot.web.public`` (home,
archive, feed, search) and ``bot.web.subscriber`` (sign-up, confirm, preferences, unsubscribe,
feedback) and share ``bot.web.context``. Flask (Pallets) was chosen over an async framework
because everything behind a page is synchronous — SQLite, the embedding model — and it runs on
waitress (``bot.web.server``).

Security, for every response (``bot.web.headers``; waitress' own error answers too): a strict
Content-Security-Policy (no script at all, styles only from /static), no framing, no MIME
sniffing, no Referer to other sites (links in pages carry no tokens, but a page's own URL does),
``no-store`` on pages with tokens or forms. Every form carries a CSRF token (Flask-WTF) except
the RFC 8058 one-click POST that mail providers send. Templates autoescape. Bad input is a 400
page; an unexpected error is logged and a plain 500 page, never a traceback. Nothing in a page
names anyone but the subscriber whose signed link opened it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sqlite3
import threading

from flask import Flask, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map

from bot.store import MissingDatabaseError
from bot.web import public, subscriber
from bot.web.context import BUSY_DATABASE_RETRY, WebState, error_page, site_context, state
from bot.web.headers import SECURITY_HEADERS

log = logging.getLogger(__name__)

# Pages that may be cached by a proxy or browser: the public archive and its feed, the stylesheet.
_CACHEABLE = ("public.issue", "public.feed", "public.feed_page", "public.favicon", "static")


class _SiteMap(Map):
    """Werkzeug's URL map without the slash redirects: merging ``//static//x`` (or adding a
    trailing slash) answers a 308 whose Location is built from the request's Host header, which a
    client chooses. A path that is not a route is a 404 instead."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "merge_slashes": False, "strict_slashes": False})


class _Site(Flask):
    url_map_class = _SiteMap


def create_app(config, db_path: str, *, base_url: str | None = None, embedder=None, wake_mailer=None) -> Flask:
    """The web front for ``config`` over the database at ``db_path``.

    ``base_url``: where links in e-mails point (default ``[web] base_url``); ``embedder``: a
    stand-in for the search model (tests); ``wake_mailer``: called when a sign-up e-mail is queued.
    """
    from bot.digest.tokens import secret_for
    from bot.store import open_db

    web = config.web or {}
    base = (base_url or web.get("base_url") or "http://127.0.0.1:8080").rstrip("/")
    db = open_db(db_path)  # applies migrations once, and the signing secret exists from now on
    try:
        secret = secret_for(db)
    finally:
        db.close()
    app = _Site(__name__, static_folder="static", template_folder="templates")
    app.config.update(
        # the session cookie only carries the CSRF token; its key is derived from the token secret
        SECRET_KEY=hmac.new(secret, b"spsbot web session", hashlib.sha256).hexdigest(),
        SESSION_COOKIE_NAME="spsbot_session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=base.startswith("https://"),
        MAX_CONTENT_LENGTH=int(web.get("max_body_bytes") or 16384),
        MAX_FORM_MEMORY_SIZE=int(web.get("max_body_bytes") or 16384), MAX_FORM_PARTS=100,
        WTF_CSRF_TIME_LIMIT=6 * 3600,  # a form left open for an afternoon still works
        TEMPLATES_AUTO_RELOAD=False, PROPAGATE_EXCEPTIONS=False, TRAP_HTTP_EXCEPTIONS=False,
    )
    csrf = CSRFProtect(app)
    # searches never take every worker thread: one at least is left for the other pages
    threads = int(web.get("threads") or 4)
    slots = threading.BoundedSemaphore(max(1, min(int(web.get("search_slots") or 1), threads - 1)))
    app.extensions["spsbot"] = WebState(config=config, db_path=str(db_path), base_url=base, embedder=embedder,
                                        wake_mailer=wake_mailer, csrf=csrf, search_slots=slots)
    from bot.digest.entries import safe_url
    from bot.digest.render import markdown_filter
    app.jinja_env.filters["safe_url"] = lambda value: safe_url(value) or ""
    app.jinja_env.filters["markdown"] = markdown_filter()  # a trial's summary, as the digest shows it
    app.context_processor(site_context)
    app.register_blueprint(public.bp)
    app.register_blueprint(subscriber.bp)
    csrf.exempt(subscriber.unsubscribe)  # checks the token itself, except for RFC 8058 one-click
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(sqlite3.OperationalError, _database_error)
    app.register_error_handler(MissingDatabaseError, _missing_database)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _security_headers(response):
    headers = response.headers
    headers.update(SECURITY_HEADERS)
    if request.is_secure:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    if request.endpoint in _CACHEABLE and response.status_code in (200, 204) and request.method == "GET":
        headers.setdefault("Cache-Control", "public, max-age=300")
    else:
        headers["Cache-Control"] = "no-store"
    headers["Server"] = "spsbot"
    return response


def _csrf_error(error):
    return error_page(400, "This form has expired or was not sent from this site. Go back, reload the page "
                           "and try again.")


def _http_error(error: HTTPException):
    messages = {404: "There is no page at this address.", 405: "This page does not accept that kind of request.",
                413: "That request is too large.", 400: "That request could not be understood."}
    message = error.description if getattr(error, "spsbot_message", False) else messages.get(
        error.code, error.description or "That request could not be handled.")
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}  # Allow, Retry-After
    return error_page(error.code or 400, message, headers=headers)


def _database_error(error: sqlite3.OperationalError):
    # Another process (the weekly run, a migration, a backup) holds SQLite's write lock: nothing
    # is wrong, the request is only early. A 503 with Retry-After says so; RFC 8058 senders retry.
    if "locked" not in str(error) and "busy" not in str(error):
        return _unexpected_error(error)
    log.warning("web: %s %s: the database is busy (another process is writing); answered 503",
                request.method, request.path)
    return error_page(503, "The site is busy saving other changes. Nothing was saved: please try again in a "
                           "minute.", headers={"Retry-After": str(BUSY_DATABASE_RETRY)})


def _missing_database(error: MissingDatabaseError):
    # The database was moved or deleted under the running server: one line for the maintainer
    # (no traceback per request), and no page pretends a sign-up or an unsubscribe was saved.
    log.error("web: %s %s: the database %s is gone (moved or deleted while serving): put it back and restart "
              "`spsbot serve`", request.method, request.path, state().db_path)
    return error_page(503, "The site is unavailable for a moment. Nothing was saved: please try again later.",
                      headers={"Retry-After": str(BUSY_DATABASE_RETRY)})


def _unexpected_error(error: Exception):
    # The traceback goes to the server's log, never to the page.
    log.error("web: %s %s failed: %s: %s", request.method, request.path, type(error).__name__, error, exc_info=True)
    return error_page(500, "Something went wrong on our side. Please try again later.")
