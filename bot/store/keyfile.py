"""The secret that signs the links in e-mails: env ``SPSBOT_SECRET``, or a key kept beside the
database, never in it.

Anyone who can read the key can forge an unsubscribe or preferences token for every subscriber,
and the database is meant to be browsed (Datasette, any SQLite tool) and backed up widely; so the
key lives in its own file, ``<database>.key``, mode 0600, made when the database is created
(``open_db``), unless env ``SPSBOT_SECRET`` provides one. Migration 007 moves a key an older
spsbot kept in the ``settings`` table into this file, so links in e-mails already sent keep working.
An in-memory database (tests) and a dry run's scratch copy get a key for the life of the connection.

Refused, with one line saying what to do: an ``SPSBOT_SECRET`` shorter than 32 bytes or equal to
a placeholder a public example ships (anyone can read those and forge every link), and a missing
key file beside a database whose links are already out (a restored backup without it, a changed
``--db`` path): quietly making a new key would break every mailed link. ``spsbot rotate-key``
makes a new key on purpose. The key is read once per process: a key file deleted while ``serve``
runs changes nothing until the next start, which refuses.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import threading
from pathlib import Path

import sqlite_utils

from bot.redact import register_secret
from bot.errors import UserError

log = logging.getLogger(__name__)

KEY_SUFFIX = ".key"
MIN_SECRET_BYTES = 32
# The SPSBOT_SECRET placeholders the project has shipped (schedules/env.example): public, so
# worthless as a key (tests/faults/test_secrets.py checks every example is listed here).
EXAMPLE_SECRETS = frozenset({"change-me-to-a-long-random-string"})
MAKE_ONE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'

_cache: dict[Path, str] = {}  # key file -> key, read once per process
_cache_lock = threading.Lock()


class KeyFileError(UserError, RuntimeError):
    """The key file cannot be used (unreadable, missing beside a database whose links are out, or
    different from the key being moved into it)."""


class SecretError(UserError, ValueError):
    """``SPSBOT_SECRET`` is unusable (a public placeholder, or too short)."""


def env_secret(env=None) -> str | None:
    """``SPSBOT_SECRET`` when it is set and usable, None when it is unset; SecretError otherwise."""
    value = (os.environ if env is None else env).get("SPSBOT_SECRET") or ""
    if not value:
        return None
    if value.strip() in EXAMPLE_SECRETS:
        raise SecretError("SPSBOT_SECRET is the placeholder from schedules/env.example, which anyone can read "
                          f"and forge links with: set your own, made with {MAKE_ONE}")
    if len(value.encode("utf-8")) < MIN_SECRET_BYTES:
        raise SecretError(f"SPSBOT_SECRET is {len(value.encode('utf-8'))} bytes, too short to resist guessing "
                          f"(at least {MIN_SECRET_BYTES}): make one with {MAKE_ONE}")
    return value


def key_path(db: sqlite_utils.Database) -> Path | None:
    """``<database file>.key``; None for an in-memory database or a dry run's scratch copy."""
    if getattr(db, "scratch", False):
        return None
    row = db.execute("PRAGMA database_list").fetchone()
    filename = row[2] if row else ""
    # The real path: the same database reached through a symlink has one key, not two.
    return Path(os.path.realpath(filename) + KEY_SUFFIX) if filename else None


def _read(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # Readable by others: whoever could read it can already forge tokens; at least stop it now.
        log.warning("signing key %s was readable by other users (mode %o); made it 0600", path, mode)
        os.chmod(path, 0o600)
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise KeyFileError(f"the signing key file {path} is empty: restore it from a backup, or run "
                           "`spsbot rotate-key` to make a new one (every link already mailed stops working)")
    return value


def _write_new(path: Path, value: str) -> bool:
    """Create ``path`` holding ``value`` (0600) unless it exists; True if this call created it.

    Written to a private temporary file first and linked into place, so a concurrent reader never
    sees a half-written key and two processes racing agree on the first one's key.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def links_out(db: sqlite_utils.Database) -> int:
    """Subscribers, sign-ups and deliveries: each had (or will get) a link signed with the key."""
    return db.execute("SELECT (SELECT count(*) FROM subscribers) + (SELECT count(*) FROM signups) "
                      "+ (SELECT count(*) FROM deliveries)").fetchone()[0]


def _missing(path: Path) -> KeyFileError:
    return KeyFileError(f"the signing key {path} is missing, and this database has subscribers whose mailed links "
                        "it signed: restore it from your backup (or set SPSBOT_SECRET back, if that signed them), "
                        "or run `spsbot rotate-key` to make a new one (every link already mailed stops working)")


def create_key(db: sqlite_utils.Database) -> None:
    """Make a new database's key file (``open_db``), unless ``SPSBOT_SECRET`` is the key."""
    path = key_path(db)
    if path is not None and not os.environ.get("SPSBOT_SECRET") and _write_new(path, secrets.token_hex(32)):
        log.debug("created the signing key %s (mode 0600; back it up with the database)", path)
        with _cache_lock:
            _cache.pop(path, None)


def signing_key(db: sqlite_utils.Database) -> str:
    """The database's signing key, read from ``<database>.key`` once per process.

    A database with no key file and no link out yet (an older spsbot's) gets one now; with links
    out it is refused (KeyFileError), never silently replaced.
    """
    path = key_path(db)
    if path is None:
        value = getattr(db, "_spsbot_key", None) or secrets.token_hex(32)
        db._spsbot_key = value
    else:
        with _cache_lock:
            value = _cache.get(path)
            if value is None:
                if not path.exists():
                    if links_out(db):
                        raise _missing(path)
                    _write_new(path, secrets.token_hex(32))
                value = _cache[path] = _read(path)
    register_secret(value)  # never echoed in an error or a log line
    return value


def signing_secret(db: sqlite_utils.Database) -> str:
    """What signs and checks links: a usable ``SPSBOT_SECRET``, else the database's key file."""
    value = env_secret()
    if value is None:
        return signing_key(db)
    _warn_if_shadowed(key_path(db), value)
    return value


_warned: set[Path] = set()


def _warn_if_shadowed(path: Path | None, value: str) -> None:
    """Say once per process when ``SPSBOT_SECRET`` overrides a different key file beside the
    database: links that key signed (mailed before the variable was set) no longer verify."""
    if path is None or path in _warned or not path.exists():
        return
    _warned.add(path)
    key = _read(path)
    register_secret(key)  # never echoed in the warning or anywhere else
    if key != value:
        log.warning("SPSBOT_SECRET is set and signs links, but %s holds another key: links mailed while that "
                    "key signed them no longer work; unset SPSBOT_SECRET to keep them, or remove the key file "
                    "once SPSBOT_SECRET is meant to sign", path)


def check_signing_secret(db: sqlite_utils.Database) -> None:
    """Raise SecretError / KeyFileError now if signing a link would (nothing is created)."""
    if env_secret() is None and (path := key_path(db)) is not None and path not in _cache:
        if path.exists():
            signing_key(db)
        elif links_out(db):
            raise _missing(path)


def rotate_key(db: sqlite_utils.Database) -> Path:
    """Replace the database's key file with a new random key; returns its path."""
    path = key_path(db)
    if path is None:
        raise KeyFileError("an in-memory database has no key file")
    value = secrets.token_hex(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    with _cache_lock:
        _cache[path] = value
    register_secret(value)
    return path


def scratch_key(db: sqlite_utils.Database) -> str:
    """The key a dry run's copy of ``db`` signs with: the real one when it exists (the same
    messages as the real run), else a throwaway one; nothing is written beside the database."""
    check_signing_secret(db)
    path = key_path(db)
    if path is not None and (path in _cache or path.exists()):
        return signing_key(db)
    return secrets.token_hex(32)


def adopt_key(db: sqlite_utils.Database, value: str) -> None:
    """Make ``value`` (a key from the old ``settings`` table) the database's key file."""
    path = key_path(db)
    if path is None:
        db._spsbot_key = value
        return
    if path.exists():
        if _read(path) != value:
            raise KeyFileError(f"{path} holds a different signing key than the one stored in the database; "
                               "move one of them away (the database's key signed the links already sent)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if not _write_new(path, value) and _read(path) != value:
        raise KeyFileError(f"{path} appeared with a different signing key while moving the stored one")
    with _cache_lock:
        _cache.pop(path, None)
    log.info("moved the signing key out of the database into %s (mode 0600)", path)
