"""A tiny stdlib HTTP endpoint for the unsubscribe link (``spsbot serve-unsubscribe``).

``GET /unsubscribe?token=…`` shows a confirmation button (link scanners and previews fetch URLs,
so a GET must never unsubscribe); ``POST /unsubscribe?token=…`` unsubscribes, which is also what
mail clients do for RFC 8058 one-click (body ``List-Unsubscribe=One-Click``).
"""

from __future__ import annotations

import html
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from bot.digest.tokens import TokenError, apply_unsubscribe, verify_token

log = logging.getLogger(__name__)


def make_server(db_factory, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """An HTTP server; ``db_factory()`` opens a database connection for each request."""
    lock = threading.Lock()  # one writer at a time, whatever the thread

    class Handler(BaseHTTPRequestHandler):
        def _token(self) -> str:
            return (parse_qs(urlparse(self.path).query).get("token") or [""])[0]

        def _reply(self, status: int, body: str) -> None:
            data = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Unsubscribe</title></head>"
                    f"<body style='font-family:Arial,sans-serif;max-width:560px;margin:40px auto;'>{body}"
                    f"</body></html>").encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - http.server's naming
            if urlparse(self.path).path.rstrip("/") != "/unsubscribe":
                return self._reply(404, "<p>Not found.</p>")
            token = self._token()
            with lock:
                db = db_factory()
                try:
                    verify_token(db, token)
                except TokenError as e:
                    return self._reply(400, f"<p>{html.escape(str(e))}.</p>")
                finally:
                    db.close()
            self._reply(200, "<p>Stop receiving this digest?</p>"
                             f"<form method='post' action='/unsubscribe?token={html.escape(token, quote=True)}'>"
                             "<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
                             "<button type='submit'>Unsubscribe</button></form>")

        def do_POST(self):  # noqa: N802
            if urlparse(self.path).path.rstrip("/") != "/unsubscribe":
                return self._reply(404, "<p>Not found.</p>")
            length = min(int(self.headers.get("Content-Length") or 0), 10_000)
            self.rfile.read(length)
            with lock:
                db = db_factory()
                try:
                    subscriber = apply_unsubscribe(db, self._token())
                except TokenError as e:
                    return self._reply(400, f"<p>{html.escape(str(e))}.</p>")
                finally:
                    db.close()
            log.info("unsubscribed subscriber %s via HTTP", subscriber["id"])  # the id, not the address
            self._reply(200, "<p>You are unsubscribed. You will not receive further digests.</p>")

        def log_message(self, format, *args):  # noqa: A002 - tokens in URLs stay out of the logs
            log.debug("unsubscribe endpoint: %s", self.command)

    return ThreadingHTTPServer((host, port), Handler)
