"""The HTTP chokepoint every source goes through.

One object per source owns request spacing, retries (429, 5xx, timeouts, dropped connections,
with exponential backoff that honours ``Retry-After``), required parameters, and a log of when
each request was sent (for tests and benchmarks). Other 4xx fail at once with a clear message.
Secrets passed in ``default_params`` (an API key) are never put into error messages.
"""

from __future__ import annotations

import logging
import re
import time
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone

import requests

from bot import __version__

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 500, 502, 503, 504}


class SourceError(RuntimeError):
    """A source could not be read: one line saying which source, what request and why."""


class HttpClient:
    def __init__(self, base_url: str, *, name: str, min_interval: float = 0.34, max_retries: int = 4,
                 backoff: float = 1.0, max_backoff: float = 60.0, timeout: float = 30.0,
                 default_params: dict | None = None, secret_params: tuple[str, ...] = (),
                 session: requests.Session | None = None, sleep=time.sleep, clock=time.monotonic):
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.min_interval = min_interval
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.default_params = dict(default_params or {})
        self.secret_params = secret_params
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", f"spsbot/{__version__} (+https://github.com/spsbot)")
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
        """Remove secret parameter values (an API key in a GET URL quoted by an exception)."""
        for name in self.secret_params:
            value = str(self.default_params.get(name) or "")
            if value:
                text = text.replace(value, "<redacted>")
        return text

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
        """Send one request with spacing and retries; return the 2xx response or raise SourceError."""
        url = f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url
        merged = {**self.default_params, **(params or {})}
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            self._space()
            response = None
            try:
                if method == "POST":
                    response = self.session.post(url, data={**merged, **(data or {})}, timeout=self.timeout)
                else:
                    response = self.session.get(url, params=merged, timeout=self.timeout)
            except requests.Timeout:
                last_problem = f"timed out after {self.timeout:g}s"
            except requests.ConnectionError as e:
                last_problem = f"connection failed ({_short(self._redact(str(e)))})"
            except requests.exceptions.ChunkedEncodingError as e:
                # The server closed the connection mid-body: as retryable as a refused connection.
                last_problem = f"connection dropped mid-answer ({_short(self._redact(str(e)))})"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise SourceError(f"{self._describe(path)}: HTTP {response.status_code} "
                                      f"{response.reason}: {self._redact(_body_hint(response))}")
                last_problem = f"HTTP {response.status_code} {self._redact(_body_hint(response))}".strip()
            if attempt < self.max_retries:
                delay = self._retry_delay(attempt, response)
                log.warning("%s: %s; retry %d/%d in %.1fs", self._describe(path), last_problem,
                            attempt + 1, self.max_retries, delay)
                if delay > 0:
                    self._sleep(delay)
        raise SourceError(f"{self._describe(path)}: {last_problem} (gave up after {self.max_retries + 1} attempts)")


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
    text = " ".join(text.split())
    # NCBI echoes the api-key in its rate-limit error body: never repeat it.
    text = _redact_api_key(text)
    return text[:limit] + ("…" if len(text) > limit else "")


def _redact_api_key(text: str) -> str:
    return re.sub(r'("api-key"\s*:\s*")[^"]*(")', r"\1<redacted>\2", text)


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) < 120 else text[:117] + "…"
