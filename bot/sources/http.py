"""The HTTP chokepoint every source goes through.

One object per source owns request spacing, retries (429, 5xx, timeouts, dropped connections,
with exponential backoff that honours ``Retry-After``), required parameters, and a log of when
each request was sent (for tests and benchmarks). Other 4xx fail at once with a clear message.

What a hostile or broken server cannot do to it:

- **Leak a credential through a redirect.** Redirects are followed by hand: only within the same
  host and never from https to http; the secret parameters (an API key) are never re-sent after
  a redirect. A refused redirect is one line naming where it pointed.
- **Hang a run.** Besides the per-read ``timeout``, each request has a total ``deadline``
  (connect, headers and body together): a watchdog shuts the socket down when it passes, so a
  body trickled a byte at a time fails like a timeout. A process-wide *run deadline*
  (``limits(run_seconds=…)``, set by the weekly job) stops every request once it has passed.
- **Exhaust memory.** The body is read in chunks and decompressed here (gzip/deflate, the only
  encodings asked for), never past ``max_bytes`` of decoded data: a gzip bomb is refused after
  ``max_bytes``, not inflated.
- **Stop a source with an unexpected exception.** Every ``requests`` failure becomes a
  ``SourceError`` naming the source and the request.

Secrets passed in ``default_params`` (an API key), and any in ``bot.redact.known_secrets``, never
reach an error message.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
import time
import weakref
import zlib
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from bot import __version__
from bot.redact import known_secrets, scrub
from bot.errors import UserError, shorten

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 500, 502, 503, 504}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 5
MB = 1024 * 1024
DEFAULT_DEADLINE = 300.0          # seconds for one whole request (connect, headers, body)
DEFAULT_MAX_BYTES = 200 * MB      # decoded body: a 1,000-study CT.gov page or a 10,000-record efetch fits
_CHUNK = 64 * 1024


class SourceError(UserError, RuntimeError):
    """A source could not be read: one line saying which source, what request and why."""


# --- limits shared by every client in a context (the weekly job sets them from the config) ------

@dataclass(frozen=True)
class Limits:
    deadline: float = DEFAULT_DEADLINE      # per request, seconds
    max_bytes: int = DEFAULT_MAX_BYTES      # per response, decoded
    run_deadline: float | None = None       # time.monotonic() after which no request is made


_DEFAULT_LIMITS = Limits()
_LIMITS: ContextVar[Limits | None] = ContextVar("spsbot_http_limits", default=None)


def current_limits() -> Limits:
    return _LIMITS.get() or _DEFAULT_LIMITS


@contextmanager
def limits(*, deadline: float | None = None, max_bytes: int | None = None, run_seconds: float | None = None):
    """Set the request deadline, the response size cap and/or the run deadline (seconds from now)
    for every ``HttpClient`` request made inside the block (explicit client arguments win)."""
    now = current_limits()
    changes = {}
    if deadline is not None:
        changes["deadline"] = float(deadline)
    if max_bytes is not None:
        changes["max_bytes"] = int(max_bytes)
    if run_seconds is not None:
        end = time.monotonic() + float(run_seconds)
        changes["run_deadline"] = min(end, now.run_deadline) if now.run_deadline else end
    token = _LIMITS.set(replace(now, **changes))
    try:
        yield current_limits()
    finally:
        _LIMITS.reset(token)


def run_time_left() -> float | None:
    """Seconds until the run deadline (negative once passed); None without one."""
    end = current_limits().run_deadline
    return None if end is None else end - time.monotonic()


def limits_from_config(config) -> dict:
    """``limits()`` arguments from ``[http]`` (request_deadline, max_response_mb)."""
    section = config.section("http") if config is not None else {}
    out = {}
    if section.get("request_deadline"):
        out["deadline"] = float(section["request_deadline"])
    if section.get("max_response_mb"):
        out["max_bytes"] = int(float(section["max_response_mb"]) * MB)
    return out


# --- the watchdog: connections are tracked so a deadline can shut the one in use down ----------

_TRACKED: "weakref.WeakSet" = weakref.WeakSet()
_TRACK_LOCK = threading.Lock()


class _Tracked:
    """Mixin for urllib3 connections: remember which thread uses the connection."""

    def _spsbot_track(self) -> None:
        self._spsbot_owner = threading.get_ident()
        with _TRACK_LOCK:
            _TRACKED.add(self)

    def connect(self):
        self._spsbot_track()
        return super().connect()

    def request(self, *args, **kwargs):
        self._spsbot_track()
        return super().request(*args, **kwargs)


class _HTTPConnection(_Tracked, HTTPConnection):
    pass


class _HTTPSConnection(_Tracked, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(HTTPAdapter):
    """requests' adapter with connections the watchdog can find."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy, **kwargs):
        manager = super().proxy_manager_for(proxy, **kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


class _Watchdog:
    """``with _Watchdog(seconds):`` shuts down this thread's sockets when the time is up, which
    makes any blocked read (headers or body, however slowly trickled) fail at once.

    It sleeps in short relative steps instead of a timed wait on a lock: a timed wait computes an
    absolute deadline, which a shifted clock (``faketime``, the suite's clock-ahead run) turns
    into years."""

    _STEP = 0.02

    def __init__(self, seconds: float):
        self.seconds = max(0.0, seconds)
        self.fired = False
        self._done = False
        self._owner = threading.get_ident()
        self._thread = threading.Thread(target=self._watch, name="http-deadline", daemon=True)

    def _watch(self) -> None:
        end = time.monotonic() + self.seconds
        while not self._done:
            left = end - time.monotonic()
            if left <= 0:
                self._fire()
                return
            time.sleep(min(left, self._STEP))

    def _fire(self) -> None:
        self.fired = True
        with _TRACK_LOCK:
            connections = [c for c in _TRACKED if getattr(c, "_spsbot_owner", None) == self._owner]
        for connection in connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> "_Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done = True  # the thread notices within one step and ends


# --- failures inside one attempt ------------------------------------------------------------------

class _Retryable(Exception):
    """This attempt failed in a way worth retrying (timeout, dropped connection)."""


class _Fatal(Exception):
    """This request must not be retried (refused redirect, oversized answer, bad URL)."""


class _Inflater:
    """Incremental gzip/deflate decoding that never returns more than asked for."""

    def __init__(self, encoding: str):
        self.encoding = encoding
        self._wbits = 16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._d = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes, limit: int) -> bytes:
        """Decode ``data``; stop once ``limit`` (≥ 1) bytes came out (the caller then refuses)."""
        out, produced = [], 0
        while data and produced < limit:
            try:
                piece = self._d.decompress(data, limit - produced)
            except zlib.error:
                if self.encoding == "deflate" and not self._started:  # raw deflate, no zlib header
                    self._wbits, self._d = -zlib.MAX_WBITS, zlib.decompressobj(-zlib.MAX_WBITS)
                    self._started = True
                    continue
                raise
            self._started = True
            out.append(piece)
            produced += len(piece)
            if self._d.eof:
                data = self._d.unused_data  # gzip allows several members one after another
                if data:
                    self._d = zlib.decompressobj(self._wbits)
            else:
                data = self._d.unconsumed_tail
        return b"".join(out)

    def finish(self) -> None:
        """At the end of the body: a compressed stream that did not end is a cut or bogus answer."""
        if self._started and not self._d.eof:  # (an empty body, e.g. a 204, is fine)
            raise zlib.error(f"the {self.encoding} stream ends before its end marker")


def _decoder(response: requests.Response) -> _Inflater | None:
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Inflater(encoding)
    raise _Fatal(f"the answer is in an encoding spsbot did not ask for ({encoding[:40]})")


def _size(n: int) -> str:
    return f"{n / MB:g} MB" if n >= MB else f"{n} bytes"


def _bare(url: str) -> str:
    """scheme://host/path of a URL: no query (it may carry a secret echoed back)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _redirect_problem(source: str, target: str) -> str | None:
    """Why a redirect from ``source`` to ``target`` must not be followed (None = it may)."""
    src, dst = urlsplit(source), urlsplit(target)
    if dst.scheme not in ("http", "https"):
        return "to a non-HTTP address"
    if src.scheme == "https" and dst.scheme == "http":
        return "from https to plain http"
    if (dst.hostname or "").lower() != (src.hostname or "").lower():
        return "to another host"
    if src.scheme == dst.scheme and src.port != dst.port:
        return "to another port"
    return None


class HttpClient:
    def __init__(self, base_url: str, *, name: str, min_interval: float = 0.34, max_retries: int = 4,
                 backoff: float = 1.0, max_backoff: float = 60.0, timeout: float = 30.0,
                 deadline: float | None = None, max_bytes: int | None = None,
                 default_params: dict | None = None, secret_params: tuple[str, ...] = (),
                 session: requests.Session | None = None, sleep=time.sleep, clock=time.monotonic):
        """``timeout``: seconds per connect/read; ``deadline``: seconds for one whole request;
        ``max_bytes``: largest decoded answer. ``deadline``/``max_bytes`` default to the
        context's ``limits()`` (300 s, 200 MB)."""
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.min_interval = min_interval
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.default_params = dict(default_params or {})
        self.secret_params = secret_params
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", f"spsbot/{__version__} (+https://github.com/spsbot)")
        # Only what _read_body can decode with a size cap (requests would add br/zstd if installed).
        self.session.headers["Accept-Encoding"] = "gzip, deflate"
        adapter = _Adapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._sleep = sleep
        self._clock = clock
        self._last_sent: float | None = None
        self.sent_at: list[float] = []   # clock() of every request actually sent
        self.requests_sent = 0

    def _space(self) -> None:
        """Wait so consecutive requests are at least ``min_interval`` apart."""
        if self._last_sent is not None and self.min_interval > 0:
            wait = self.min_interval - (self._clock() - self._last_sent)
            if wait > 0:
                self._sleep(wait)
        self._last_sent = self._clock()
        self.sent_at.append(self._last_sent)
        self.requests_sent += 1

    def _redact(self, text: str) -> str:
        """Remove secrets (the secret parameters, and every known secret) in every encoding."""
        own = [str(self.default_params.get(name) or "") for name in self.secret_params]
        return scrub(text, [*own, *known_secrets()])

    def _describe(self, path: str) -> str:
        return f"{self.name} {self.base_url}/{path.lstrip('/')}"

    def _retry_delay(self, attempt: int, response: requests.Response | None) -> float:
        """Exponential backoff, or what the server's Retry-After asks for (capped)."""
        delay = self.backoff * (2 ** attempt)
        header = response.headers.get("Retry-After") if response is not None else None
        if header:
            delay = _parse_retry_after(header, default=delay)
        return min(delay, self.max_backoff)

    def request(self, path: str, params: dict | None = None, method: str = "GET",
                data: dict | None = None) -> requests.Response:
        """Send one request with spacing and retries; return the 2xx response (body read, at most
        ``max_bytes`` decoded) or raise SourceError."""
        url = f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url
        merged = {**self.default_params, **(params or {})}
        last_problem, why_stopped = "", ""
        for attempt in range(self.max_retries + 1):
            self._space()
            self._check_run_deadline(path)
            response = None
            try:
                response = self._attempt(url, method, merged, data)
            except _Fatal as e:
                raise SourceError(self._redact(f"{self._describe(path)}: {e}")) from None
            except _Retryable as e:
                last_problem = self._redact(shorten(str(e), PROBLEM_CHARS))
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise SourceError(f"{self._describe(path)}: HTTP {response.status_code} "
                                      f"{response.reason}: {self._redact(_body_hint(response))}")
                last_problem = f"HTTP {response.status_code} {self._redact(_body_hint(response))}".strip()
            if attempt < self.max_retries:
                delay = self._retry_delay(attempt, response)
                left = run_time_left()
                if left is not None and left < delay:
                    why_stopped = "; the run's deadline comes before another try"
                    break
                log.warning("%s: %s; retry %d/%d in %.1fs", self._describe(path), last_problem,
                            attempt + 1, self.max_retries, delay)
                if delay > 0:
                    self._sleep(delay)
        tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
        raise SourceError(f"{self._describe(path)}: {last_problem} (gave up after {tries}{why_stopped})")

    def _check_run_deadline(self, path: str) -> None:
        left = run_time_left()
        if left is not None and left <= 0:
            raise SourceError(f"{self._describe(path)}: not sent, the run's deadline has passed")

    # --- one attempt: the request, the redirects we allow, the body -----------------------------

    def _attempt(self, url: str, method: str, params: dict, data: dict | None) -> requests.Response:
        limit = current_limits()
        deadline = self.deadline if self.deadline is not None else limit.deadline
        left = run_time_left()
        by_run = left is not None and left < deadline   # the run's deadline comes first
        seconds = max(0.0, left) if by_run else deadline
        with _Watchdog(seconds) as watchdog:
            try:
                return self._follow(url, method, params, data)
            except _Retryable:
                if watchdog.fired and by_run:
                    raise _Retryable("cut off: the run's deadline passed during the request") from None
                if watchdog.fired:
                    raise _Retryable(f"took longer than the {seconds:g}s deadline of one request") from None
                raise

    def _follow(self, url: str, method: str, params: dict, data: dict | None) -> requests.Response:
        body = {**params, **(data or {})} if method == "POST" else None
        query = None if method == "POST" else params
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(method, url, query, body)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                response._content = self._read_body(response)
                response._content_consumed = True
                return response
            target = urljoin(response.url, location)
            response.close()
            problem = _redirect_problem(url, target)
            if problem:
                raise _Fatal(f"refused a redirect (HTTP {response.status_code}) {problem}: {_bare(target)} "
                             "(redirects are followed only within the same host, never from https to http)")
            # Credentials are never re-sent after a redirect, even to the same host.
            url, query = self._without_secrets(target), None
            if response.status_code in (307, 308) and method == "POST":
                body = {k: v for k, v in (body or {}).items() if k not in self.secret_params}
            else:
                method, body = "GET", None
        raise _Fatal(f"more than {MAX_REDIRECTS} redirects")

    def _without_secrets(self, url: str) -> str:
        parts = urlsplit(url)
        if not parts.query or not self.secret_params:
            return url
        kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in self.secret_params]
        return urlunsplit(parts._replace(query=urlencode(kept)))

    def _send(self, method: str, url: str, query: dict | None, body: dict | None) -> requests.Response:
        try:
            return self.session.request(method, url, params=query, data=body, timeout=self.timeout,
                                        allow_redirects=False, stream=True)
        except requests.Timeout:
            raise _Retryable(f"timed out after {self.timeout:g}s") from None
        except requests.ConnectionError as e:
            raise _Retryable(f"connection failed: {_cause(e)}") from None
        except requests.exceptions.ChunkedEncodingError as e:
            # The server closed the connection mid-answer: as retryable as a refused connection.
            raise _Retryable(f"connection dropped mid-answer: {_cause(e)}") from None
        except requests.RequestException as e:  # a bad URL or anything else requests refuses
            raise _Fatal(f"{type(e).__name__}: {_cause(e)}") from None

    def _read_body(self, response: requests.Response) -> bytes:
        """The decoded body, refusing more than ``max_bytes`` (counted after decompression)."""
        cap = self.max_bytes if self.max_bytes is not None else current_limits().max_bytes
        done = False
        try:
            decoder = _decoder(response)
            declared = response.headers.get("Content-Length", "")
            if decoder is None and declared.isdigit() and int(declared) > cap:
                raise _Fatal(f"the answer is larger than the {_size(cap)} limit ({_size(int(declared))} announced)")
            chunks, total = [], 0
            for raw in response.raw.stream(_CHUNK, decode_content=False):
                piece = decoder.feed(raw, cap - total + 1) if decoder else raw
                total += len(piece)
                if total > cap:
                    raise _Fatal(f"the answer is larger than the {_size(cap)} limit"
                                 + (" once decompressed" if decoder else ""))
                chunks.append(piece)
            if decoder:
                decoder.finish()
            done = True
            return b"".join(chunks)
        except zlib.error as e:
            raise _Retryable(f"the {decoder.encoding} answer cannot be decoded ({e})") from None
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            raise _Retryable(f"timed out after {self.timeout:g}s") from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _Retryable(f"connection dropped mid-answer: {_cause(e)}") from None
        finally:
            if not done:
                response.close()  # drop the connection: the rest of the body is never read


def source_client(base_url: str, *, name: str, min_interval: float, **http_options) -> HttpClient:
    """What every source's ``make_client(base_url, *, min_interval=None, **http_options)`` returns:
    an ``HttpClient`` named for its log lines; ``http_options`` given as None are left out (so a
    fetch stage can pass its ``sleep=``/``backoff=`` arguments through whether or not a test set them)."""
    options = {key: value for key, value in http_options.items() if value is not None}
    return HttpClient(base_url, name=name, min_interval=min_interval, **options)


def _parse_retry_after(value: str, default: float) -> float:
    """Retry-After is either seconds or an HTTP date."""
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return default


def _body_hint(response: requests.Response, limit: int = 160) -> str:
    """A short, single-line excerpt of an error body (NCBI's JSON errors say what went wrong)."""
    try:
        text = response.text
    except Exception:  # noqa: BLE001 - undecodable body; the status says enough
        return ""
    # NCBI echoes the api-key in its rate-limit error body: never repeat it.
    text = re.sub(r'("api-key"\s*:\s*")[^"]*(")', r"\1<redacted>\2", " ".join(text.split()))
    return text[:limit] + ("…" if len(text) > limit else "")


PROBLEM_CHARS = 200  # one attempt's failure, as logged and recorded


def _cause(error: BaseException) -> str:
    """What really failed, in the innermost error's words.

    requests wraps urllib3's MaxRetryError ("_HTTPSPool(host=…): Max retries exceeded with url:
    …"), whose ``reason`` is the failure itself: ``Failed to resolve 'host' (…)``, ``[Errno 111]
    Connection refused``, a TLS certificate error, a read timeout. That is what a maintainer acts on.
    """
    seen: set[int] = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = getattr(error, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in getattr(error, "args", ()) if isinstance(a, BaseException)), None)
        if inner is None:
            break
        error = inner
    text = " ".join(str(error).split())
    # "<urllib3.connection.HTTPSConnection object at 0x…>: " or "HTTPSConnection(host=…, port=…): "
    text = re.sub(r"^(<[^>]*>|\w*Connection\([^)]*\)):\s*", "", text)
    text = text.replace("Failed to establish a new connection: ", "")
    if isinstance(error, ssl.SSLError) or "SSL" in type(error).__name__:
        text = f"TLS failed: {text}"
    return shorten(text or type(error).__name__, PROBLEM_CHARS - 40)
