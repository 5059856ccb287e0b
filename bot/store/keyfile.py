"""The unsubscribe signing key, kept beside the database, never in it.

Anyone who can read the key can forge an unsubscribe token for every subscriber, and the database
is meant to be browsed (Datasette, any SQLite tool) and backed up widely; so the key lives in its
own file, ``<database>.key``, created with mode 0600 (owner read/write only), unless env
``SPSBOT_SECRET`` provides one (see ``bot.digest.tokens``). Migration 007 moves a key an older
spsbot kept in the ``settings`` table into this file, so links in e-mails already sent keep working.
An in-memory database (tests) gets a random key for the life of its connection.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

import sqlite_utils

from bot.redact import register_secret
from bot.errors import UserError

log = logging.getLogger(__name__)

KEY_SUFFIX = ".key"


class KeyFileError(UserError, RuntimeError):
    """The key file cannot be used (unreadable, or different from the key being moved into it)."""


def key_path(db: sqlite_utils.Database) -> Path | None:
    """``<database file>.key``; None for an in-memory database."""
    row = db.execute("PRAGMA database_list").fetchone()
    filename = row[2] if row else ""
    # The real path: the same database reached through a symlink has one key, not two.
    return Path(os.path.realpath(filename) + KEY_SUFFIX) if filename else None


def _read(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # Readable by others: whoever could read it can already forge tokens; at least stop it now.
        log.warning("unsubscribe key %s was readable by other users (mode %o); made it 0600", path, mode)
        os.chmod(path, 0o600)
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise KeyFileError(f"the unsubscribe key file {path} is empty: delete it to make a new key "
                           "(links in e-mails already sent then stop working) or restore it from a backup")
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


def signing_key(db: sqlite_utils.Database) -> str:
    """The database's unsubscribe key: read from ``<database>.key``, created on first use."""
    path = key_path(db)
    if path is None:
        value = getattr(db, "_spsbot_key", None) or secrets.token_hex(32)
        db._spsbot_key = value
    else:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            if _write_new(path, secrets.token_hex(32)):
                log.info("created the unsubscribe signing key %s (mode 0600; back it up with the database)", path)
        value = _read(path)
    register_secret(value)  # never echoed in an error or a log line
    return value


def adopt_key(db: sqlite_utils.Database, value: str) -> None:
    """Make ``value`` (a key from the old ``settings`` table) the database's key file."""
    path = key_path(db)
    if path is None:
        db._spsbot_key = value
        return
    if path.exists():
        if _read(path) != value:
            raise KeyFileError(f"{path} holds a different unsubscribe key than the one stored in the database; "
                               "move one of them away (the database's key signed the links already sent)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if not _write_new(path, value) and _read(path) != value:
        raise KeyFileError(f"{path} appeared with a different unsubscribe key while moving the stored one")
    log.info("moved the unsubscribe signing key out of the database into %s (mode 0600)", path)
