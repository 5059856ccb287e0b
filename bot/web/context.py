"""What every route of the web front shares: the app's state, the site's name, error pages and
the per-client limits. The routes (``bot.web.public``, ``bot.web.subscriber``) and the app
factory (``bot.web.app``) all import from here, so none of them imports another."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from flask import current_app, render_template, request

from bot.web.limits import RateLimiter, client_key

# How long a request waits for SQLite's write lock (the store's default is 10 s, for batch jobs).
# The weekly run may hold it longer than that; a request that waited the whole time would hold a
# worker thread and still fail, so it waits briefly and answers 503 with Retry-After (app.py).
WRITE_WAIT_MS = 3000
BUSY_DATABASE_RETRY = 30  # seconds

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
    csrf: object = None
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
        """This thread's connection (waitress' worker threads live as long as the server), to
        the file now at ``db_path``: one moved or deleted away is let go, so a sign-up is never
        written into a file nobody will read again, and a database put back is picked up."""
        conn = getattr(self._local, "db", None)
        if conn is not None and self._local.inode != _inode(self.db_path):
            conn.close()
            conn = self._local.db = None
        if conn is None:
            from bot.store import open_db
            # create=False: `serve` made the database before listening; one missing now was moved
            # or deleted, and a new empty one would quietly take sign-ups nobody ever mails
            conn = open_db(self.db_path, lock_wait_ms=WRITE_WAIT_MS, create=False)
            self._local.db, self._local.inode = conn, _inode(self.db_path)
        return conn

    def search_embedder(self):
        """The embedding model for hybrid search, loaded once per process on first use."""
        with self._embedder_lock:
            if self.embedder is None:
                from bot.search.hybrid import load_default_embedder
                self.embedder = load_default_embedder(self.config)
            return self.embedder


def _inode(path: str) -> tuple[int, int] | None:
    """The file at ``path`` (device, inode), None when there is none: one stat per request."""
    try:
        found = os.stat(os.path.expanduser(path))
    except OSError:
        return None
    return found.st_dev, found.st_ino


def state() -> WebState:
    return current_app.extensions["spsbot"]


def site_context() -> dict:
    config = state().config
    return {"site": {"slug": (config.topic.slug or "topic").upper(), "topic": config.topic.name,
                     "description": config.topic.description}}


def error_page(status: int, message: str, *, headers: dict | None = None):
    """A page saying what went wrong in one sentence (the message is escaped by the template)."""
    body = render_template("message.html", title=STATUS_TEXT.get(status, "Error"), message=message, error=True)
    return body, status, headers or {}


def _abort_with(error_class, message: str, **kwargs):
    error = error_class(message, **kwargs)
    error.spsbot_message = True  # the error handler shows this message, not the generic one
    raise error


def bad_request(message: str):
    """Abort with a 400 page that shows ``message``."""
    from werkzeug.exceptions import BadRequest
    _abort_with(BadRequest, message)


def busy(message: str, retry_after: int):
    """Abort with a 503 page that shows ``message`` and says when to come back (Retry-After)."""
    from werkzeug.exceptions import ServiceUnavailable
    _abort_with(ServiceUnavailable, message, retry_after=retry_after)


def limit(bucket: str, per: int, window: float) -> None:
    """Count this request against the client's limit for ``bucket``; over it, a 429 page."""
    wait = state().limiter.hit(bucket, client_key(request.remote_addr), per, window)
    if wait:
        from werkzeug.exceptions import TooManyRequests
        seconds = int(wait) + 1
        _abort_with(TooManyRequests, f"Too many requests from your network. Please wait {duration(seconds)} "
                                     "and try again.", retry_after=seconds)


def duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{round(seconds / 60)} minutes"
