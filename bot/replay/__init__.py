"""A real HTTP server on 127.0.0.1 that answers from recorded data.

Used by ``spsbot demo`` (no network needed: the real fetch code talks HTTP to this server) and
by the tests. A server is built from a ``respond(request) -> Response`` function; every request
it received is kept in ``requests`` (method, path, query, body, time) so tests can check paging,
parameters and spacing.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit


def demo_data_dir(source: str = "pubmed") -> Path:
    """Where the bundled recorded data for ``source`` ("pubmed", "ctgov") lives in the package."""
    return Path(str(resources.files("bot").joinpath("demo_data", source)))


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    headers: dict[str, str]
    at: float

    def param(self, name: str, default: str | None = None) -> str | None:
        """One parameter from the query string or a form-encoded POST body."""
        values = self.query.get(name) or self.form().get(name)
        return values[0] if values else default

    def form(self) -> dict[str, list[str]]:
        if self.body and "form" in self.headers.get("Content-Type", ""):
            return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {}


@dataclass
class Response:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/xml; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    # Misbehaviours on cue, for fault tests: close the socket after this many body bytes,
    # or sleep before answering.
    cut_after: int | None = None
    delay: float = 0.0
    # Reset the TCP connection (RST, nothing answered), like a crashed proxy or load balancer.
    reset: bool = False


class LocalServer:
    """``with LocalServer(respond) as server: server.url`` — serves until the block ends."""

    def __init__(self, respond: Callable[[Request], Response], host: str = "127.0.0.1", port: int = 0):
        self.respond = respond
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, the body waits for the
            # client's delayed ACK of the headers (~40 ms on Linux), for every request.
            disable_nagle_algorithm = True

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                                  body, dict(self.headers.items()), time.monotonic())
                with outer._lock:
                    outer.requests.append(request)
                try:
                    response = outer.respond(request)
                except Exception as e:  # noqa: BLE001 - a bug in a responder is a 500, not a hang
                    response = Response(500, f"replay server error: {e}", "text/plain")
                if response.delay:
                    time.sleep(response.delay)
                if response.reset:
                    # SO_LINGER 0: close() sends RST, so the client sees "connection reset by peer".
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                data = response.body.encode("utf-8") if isinstance(response.body, str) else response.body
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                if response.cut_after is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                if response.cut_after is not None:
                    self.wfile.write(data[:response.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def handle_one_request(self):
                try:
                    super().handle_one_request()
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up (a read timeout in a fault test): nothing to answer.
                    self.close_connection = True

            do_GET = do_POST = _handle

            def log_message(self, format, *args):  # noqa: A002 - keep test and demo output clean
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalServer":
        # serve_forever polls for shutdown every poll_interval (0.5 s by default): at the default,
        # every server stop (each test, each demo) waited half a second for nothing.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="replay-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
