"""One function that removes secrets from any text spsbot records: ``scrub(text)``.

Every place an error or a log line is written goes through it: the log formatter (stderr and
any log file), the CLI's one-line errors, ``runs.error``, ``spsbot status`` (text and JSON) and
the HTTP and SMTP error messages. A secret can come back in more shapes than its plain text: a
hostile SMTP relay echoes the base64 AUTH PLAIN payload (``\\0user\\0password``) or the AUTH
LOGIN one (``base64(password)``), an HTTP error quotes a URL with the key percent-encoded, a
JSON body escapes it. So each secret is searched for as plain text, percent-encoded (either
case), JSON/``repr``-escaped, and inside any base64 run (standard or URL-safe alphabet, at any
alignment: the base64 of *any* text containing the secret contains one of three fixed cores).

The secrets are the values of ``SECRET_ENV`` in the environment plus any registered with
``register_secret`` (the unsubscribe key read from its file). Text written before a secret was
known cannot be scrubbed later: ``status`` re-scrubs stored errors with the secrets it knows now.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from urllib.parse import quote, quote_plus

__all__ = ["SECRET_ENV", "REDACTED", "scrub", "register_secret", "known_secrets"]

# Environment variables whose values are secrets (README: "Secrets").
SECRET_ENV = ("SPSBOT_SMTP_PASSWORD", "NCBI_API_KEY", "SPSBOT_SECRET")
REDACTED = "<redacted>"
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{4,}={0,2}")

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Scrub ``value`` from everything recorded from now on (e.g. a key read from a file)."""
    if value:
        with _lock:
            _registered.add(str(value))


def known_secrets(env=None) -> list[str]:
    """The secrets ``scrub`` removes by default: environment values and registered ones."""
    env = os.environ if env is None else env
    values = {env.get(name) or "" for name in SECRET_ENV} | _registered
    return sorted((v for v in values if v), key=len, reverse=True)


def _base64_cores(secret: bytes) -> list[str]:
    """For each of the 3 alignments, the base64 characters that depend on the secret alone."""
    cores = []
    for skip in range(3):  # the secret starts 0, 2 or 1 bytes into a 3-byte group
        whole = secret[skip:]
        whole = whole[:len(whole) - len(whole) % 3]
        if len(whole) >= 3:
            encoded = base64.b64encode(whole).decode("ascii")
            cores += [encoded, encoded.replace("+", "-").replace("/", "_")]
    return cores


def _forms(secret: str) -> tuple[list[str], list[re.Pattern]]:
    """(literal forms, case-insensitive patterns) of one secret."""
    literal = {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]}
    encoded = {quote(secret, safe=""), quote(secret), quote_plus(secret)} - {secret}
    patterns = [re.compile(re.escape(form), re.IGNORECASE) for form in encoded]
    return sorted(literal, key=len, reverse=True), patterns


def scrub(text, secrets=None) -> str:
    """``text`` (any object; str() is taken) with every form of every secret replaced by
    ``<redacted>``. ``secrets`` defaults to ``known_secrets()``."""
    if text is None:
        return ""
    text = str(text)
    values = known_secrets() if secrets is None else [s for s in secrets if s]
    if not values or not text:
        return text
    cores: list[str] = []
    for secret in values:
        literal, patterns = _forms(secret)
        for form in literal:
            text = text.replace(form, REDACTED)
        for pattern in patterns:
            text = pattern.sub(REDACTED, text)
        cores += _base64_cores(secret.encode("utf-8"))
    if cores:
        text = _BASE64_RUN.sub(lambda m: REDACTED if any(c in m.group(0) for c in cores) else m.group(0), text)
    return text
