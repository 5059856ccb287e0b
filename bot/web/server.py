"""Run the web front on waitress, with limits a public endpoint needs.

Why waitress: a pure-Python production WSGI server (Pylons project) with no C build and no
dependencies, which reads every request completely on its asynchronous I/O loop before a worker
thread sees it. A client that sends half a request and goes quiet therefore holds a socket, not
a thread; the fixed pool of ``threads`` workers bounds how many requests run at once, and the
listen backlog (1024) queues connection bursts instead of resetting them. Its parser answers a
malformed request (``Content-Length: abc``, bad chunking, oversized headers) with 400/431 itself.

Added here: a deadline for receiving a whole request (``request_timeout``), which waitress lacks
— ``channel_timeout`` only closes a connection that is *silent*, so a client trickling one byte
a second would otherwise keep it forever. The server's maintenance pass (every
``cleanup_interval`` seconds) closes any connection whose current request has been arriving for
longer than the deadline.
"""

from __future__ import annotations

import logging
import time

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

from bot.web.headers import SECURITY_HEADERS

log = logging.getLogger(__name__)

HEADER_BYTES = 16384  # request line + headers; tokens and search queries are far below this


class HeaderedErrorTask(ErrorTask):
    """waitress' own error answers (400 bad request line, 413, 431) with the site's security
    headers and no-store, like every answer of the app."""

    def __init__(self, channel, request):
        super().__init__(channel, request)
        self.response_headers.extend([*SECURITY_HEADERS.items(), ("Cache-Control", "no-store")])


class DeadlineChannel(HTTPChannel):
    """A waitress connection that remembers when its current request started arriving."""

    error_task_class = HeaderedErrorTask
    request_started: float | None = None

    def received(self, data):
        if self.request is None and data and self.request_started is None:
            self.request_started = time.monotonic()
        result = super().received(data)
        if self.request is None:  # the request is complete (handed to a worker) or none began
            self.request_started = None
        return result


class DeadlineServer(TcpWSGIServer):
    """TcpWSGIServer whose maintenance also closes requests that take too long to arrive."""

    channel_class = DeadlineChannel
    request_timeout = 20.0

    def maintenance(self, now):
        super().maintenance(now)
        cutoff = time.monotonic() - self.request_timeout
        for channel in list(self.active_channels.values()):
            started = getattr(channel, "request_started", None)
            if started is not None and started < cutoff and not channel.requests:
                log.info("web: closing a connection whose request took over %.0f s to arrive", self.request_timeout)
                channel.will_close = True


def make_server(app, host: str = "127.0.0.1", port: int = 8080, web: dict | None = None) -> DeadlineServer:
    """A listening server for ``app`` (``server.run()`` serves until interrupted; ``port=0`` picks
    a free port, see ``server.effective_port``). ``web`` is the ``[web]`` config section."""
    web = web or {}
    channel_timeout = int(web.get("channel_timeout") or 30)
    request_timeout = int(web.get("request_timeout") or 20)
    max_body = int(web.get("max_body_bytes") or 16384)
    proxy = (web.get("trusted_proxy") or "").strip() or None
    forwarded = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
    proxy_settings = {"trusted_proxy": proxy, "trusted_proxy_count": 1,
                      "trusted_proxy_headers": forwarded} if proxy else {}
    adj = Adjustments(
        host=host, port=port, threads=int(web.get("threads") or 4),
        connection_limit=int(web.get("connection_limit") or 500), backlog=1024,
        channel_timeout=channel_timeout, cleanup_interval=max(1, min(channel_timeout, request_timeout, 30) // 2),
        max_request_header_size=HEADER_BYTES, max_request_body_size=max_body,
        **proxy_settings, clear_untrusted_proxy_headers=True, log_untrusted_proxy_headers=False,
        asyncore_use_poll=True,  # select() cannot watch more than 1024 sockets
        expose_tracebacks=False, ident="spsbot", url_scheme="http")
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    server = DeadlineServer(app, map={}, dispatcher=dispatcher, adj=adj)
    server.request_timeout = float(request_timeout)
    return server


def stop_server(server: DeadlineServer, timeout: float = 5.0) -> None:
    """Stop the workers and close every socket; a ``run()`` in another thread then returns
    (waitress' loop runs while it has sockets to watch)."""
    from waitress import wasyncore
    server.task_dispatcher.shutdown(timeout=timeout)
    wasyncore.close_all(server._map)


def serve_in_thread(server: DeadlineServer):
    """Run ``server`` in a daemon thread (tests, embedding); returns the thread."""
    import threading
    thread = threading.Thread(target=server.run, name="spsbot-web", daemon=True)
    thread.start()
    return thread
