"""Hostile servers on 127.0.0.1 for the fault tests: one that trickles its answer a byte at a
time, an HTTPS ``LocalServer`` (self-signed certificate), and a gzip bomb."""

from __future__ import annotations

import socket
import ssl
import threading
import zlib

from bot.replay import LocalServer

MB = 1024 * 1024


class TrickleServer:
    """Answers every request with a 200 whose body (or, with ``slow_headers``, whose status line
    and headers too) arrives one byte every ``interval`` seconds, forever: the attack a per-read
    timeout cannot stop."""

    def __init__(self, *, interval: float = 0.05, slow_headers: bool = False):
        self.interval, self.slow_headers = interval, slow_headers
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 100000000\r\n\r\n"
        with conn:
            try:
                conn.recv(65536)  # the request; its content does not matter
                if not self.slow_headers:
                    conn.sendall(head)
                data = (head if self.slow_headers else b"") + b"<" * 100_000_000
                for i in range(len(data)):
                    if self._stop.wait(self.interval):
                        return
                    conn.sendall(data[i:i + 1])
            except OSError:
                return  # the client gave up: exactly what the test wants

    def __enter__(self) -> "TrickleServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._listener.close()


class HttpsServer(LocalServer):
    """A ``LocalServer`` speaking TLS with the given certificate (trust it with REQUESTS_CA_BUNDLE)."""

    def __init__(self, respond, cert: tuple[str, str]):
        super().__init__(respond)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*cert)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)

    @property
    def url(self) -> str:
        return "https" + super().url[len("http"):]


def gzip_bomb(inflated_mb: int = 64) -> bytes:
    """A valid gzip stream that inflates to ``inflated_mb`` MB of zeros (about 1 kB per MB): one
    member compressed once and repeated, which RFC 1952 allows and every gzip reader follows."""
    member = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    one = member.compress(b"\0" * MB) + member.flush()
    return one * inflated_mb
