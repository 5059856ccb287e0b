"""The Flask application behind ``spsbot serve``: shared state, security headers, error pages.

``create_app(config, db_path)`` builds the app; the routes live in ``bot.web.public`` (home,
archive, feed, search) and ``bot.web.subscriber`` (sign-up, confirm, preferences, unsubscribe,
feedback). Flask (Pallets) was chosen over an async framework because everything behind a page
is synchronous — SQLite, the embedding model — and it runs on waitress (``bot.web.server``).

Security, for every response: a strict Content-Security-Policy (no script at all, styles only
from /static), no framing, no MIME sniffing, no Referer to other sites (links in pages carry no
tokens, but a page's own URL does), ``no-store`` on pages with tokens or forms. Every form carries
a CSRF token (Flask-WTF) except the RFC 8058 one-click POST that mail providers send. Templates
autoescape. Bad input is a 400 page; an unexpected error is logged and a plain 500 page, never a
traceback. Nothing in a page names anyone but the subscriber whose signed link opened it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from dataclasses import dataclass, field

from flask import Flask, current_app, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from bot.web.limits import RateLimiter

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
# Pages that may be cached by a proxy or browser: the public archive and its feed, the stylesheet.
_CACHEABLE = ("public.issue", "public.feed", "public.feed_page", "public.favicon", "static")
STATUS_TEXT = {400: "Bad request", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
               413: "Request too large", 429: "Too many requests", 500: "Something went wrong",
               503: "Busy"}


@dataclass
class WebState:
    """What the routes share: settings, the database path, limits, the search model."""

    config: object
    db_path: str
    base_url: str
    limiter: RateLimiter = field(default_factory=RateLimiter)
    embedder: object = None                   # a test's fake; else loaded on the first search
    wake_mailer: object = None                # called after a sign-up is stored (the mailer thread)
    csrf: CSRFProtect | None = None
    search_slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(1))
    _local: threading.local = field(default_factory=threading.local)
    _embedder_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def web(self) -> dict:
        return self.config.web or {}

    def setting(self, key: str, default):
        value = self.web.get(key)
        return default if value is None else value

    def db(self):
        """This thread's connection (waitress' worker threads live as long as the server)."""
        conn = getattr(self._local, "db", None)
        if conn is None:
            from bot.store import open_db
            conn = self._local.db = open_db(self.db_path)
        return conn

    def search_embedder(self):
        """The embedding model for hybrid search, loaded once per process on first use."""
        with self._embedder_lock:
            if self.embedder is None:
                from bot.search.hybrid import load_default_embedder
                self.embedder = load_default_embedder(self.config.ranking)
            return self.embedder


def state() -> WebState:
    return current_app.extensions["spsbot"]


def site_context() -> dict:
    config = state().config
    return {"site": {"slug": (config.topic.slug or "topic").upper(), "topic": config.topic.name,
                     "description": config.topic.description}}


def create_app(config, db_path: str, *, base_url: str | None = None, embedder=None, wake_mailer=None) -> Flask:
    """The web front for ``config`` over the database at ``db_path``.

    ``base_url``: where links in e-mails point (default ``[web] base_url``); ``embedder``: a
    stand-in for the search model (tests); ``wake_mailer``: called when a sign-up e-mail is queued.
    """
    from bot.digest.tokens import secret_for
    from bot.store import open_db
    from bot.web import public, subscriber

    web = config.web or {}
    base = (base_url or web.get("base_url") or "http://127.0.0.1:8080").rstrip("/")
    db = open_db(db_path)  # applies migrations once, and the signing secret exists from now on
    try:
        secret = secret_for(db)
    finally:
        db.close()
    app = Flask(__name__, static_folder="static", template_folder="templates")
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
    app.extensions["spsbot"] = WebState(config=config, db_path=str(db_path), base_url=base, embedder=embedder,
                                        wake_mailer=wake_mailer, csrf=csrf)
    from bot.digest.entries import safe_url
    app.jinja_env.filters["safe_url"] = lambda value: safe_url(value) or ""
    app.context_processor(site_context)
    app.register_blueprint(public.bp)
    app.register_blueprint(subscriber.bp)
    csrf.exempt(subscriber.unsubscribe)  # checks the token itself, except for RFC 8058 one-click
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _security_headers(response):
    headers = response.headers
    headers["Content-Security-Policy"] = CSP
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"  # CSRF checks need our own Referer; other sites get none
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
    if request.is_secure:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    if request.endpoint in _CACHEABLE and response.status_code in (200, 204) and request.method == "GET":
        headers.setdefault("Cache-Control", "public, max-age=300")
    else:
        headers["Cache-Control"] = "no-store"
    headers["Server"] = "spsbot"
    return response


def error_page(status: int, message: str, *, headers: dict | None = None):
    """A page saying what went wrong in one sentence (the message is escaped by the template)."""
    body = render_template("message.html", title=STATUS_TEXT.get(status, "Error"), message=message, error=True)
    return body, status, headers or {}


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


def _unexpected_error(error: Exception):
    # The traceback goes to the server's log, never to the page.
    log.error("web: %s %s failed: %s: %s", request.method, request.path, type(error).__name__, error, exc_info=True)
    return error_page(500, "Something went wrong on our side. Please try again later.")


def bad_request(message: str):
    """Abort with a 400 page that shows ``message``."""
    from werkzeug.exceptions import BadRequest
    error = BadRequest(message)
    error.spsbot_message = True
    raise error


def limit(bucket: str, per: int, window: float) -> None:
    """Count this request against the client's limit for ``bucket``; over it, a 429 page."""
    wait = state().limiter.hit(bucket, request.remote_addr or "unknown", per, window)
    if wait:
        from werkzeug.exceptions import TooManyRequests
        seconds = int(wait) + 1
        error = TooManyRequests(f"Too many requests from your network. Please wait {_duration(seconds)} "
                                "and try again.", retry_after=seconds)
        error.spsbot_message = True
        raise error


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{round(seconds / 60)} minutes"
