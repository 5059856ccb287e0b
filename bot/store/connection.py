"""Opening the SQLite database (WAL, busy timeout, migrations, owner-only file modes), its file,
scratch copies and its integrity check."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlite_utils

from bot.errors import UserError
from bot.store.keyfile import KeyFileError, create_key, scratch_key
from bot.store.schema import SchemaError, ensure_db_shape

log = logging.getLogger(__name__)


class DatabaseOpenError(UserError, sqlite3.DatabaseError):
    """The database file cannot be used: unreadable, not SQLite, or from a newer spsbot (one line)."""


class MissingDatabaseError(DatabaseOpenError):
    """No database at the path, for a caller that must not create one (one line, the next step)."""


def database_exists(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a database: an in-memory one, or a file with content (an empty file,
    with no -wal beside it, is what SQLite would start a new database in)."""
    if str(path) == ":memory:":
        return True
    file = Path(path).expanduser()
    wal = Path(f"{file}-wal")
    return file.is_file() and (file.stat().st_size > 0 or (wal.is_file() and wal.stat().st_size > 0))


def open_db(path: str | os.PathLike, *, lock_wait_ms: int = 10000, create: bool = True) -> sqlite_utils.Database:
    """Open the database at ``path`` and bring its schema up to date.

    ``create``: make it (with its key file) when it does not exist; False raises
    MissingDatabaseError instead and leaves nothing behind — for commands that only read or change
    existing rows, where a new empty database would hide a wrong path ("0 subscribers") and be a
    second one from then on.
    ``lock_wait_ms``: how long a write waits for another connection's write lock before
    "database is locked" (batch jobs wait long; the web front briefly, ``bot.web.context``).
    A file that cannot be used raises DatabaseOpenError naming it ("cannot open database …").
    """
    if not create and not database_exists(path):
        raise MissingDatabaseError(f"no database at {Path(path).expanduser()}: check --db / SPSBOT_DB (on a systemd "
                                   "install run commands as the units do, `spsbot_admin` in schedules/README.md), "
                                   "or create it with `spsbot run`")
    try:
        return _open(path, lock_wait_ms)
    except (sqlite3.DatabaseError, OSError, SchemaError, KeyFileError) as e:
        raise DatabaseOpenError(f"cannot open database {path}: {e}") from e


def _private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 if it does not exist (True then), or take group and
    other permissions off an existing one, with a warning: the database holds every subscriber's
    address and history. SQLite gives the -wal and -shm files the database file's mode."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return True
    except FileExistsError:
        pass
    if path.is_file() and path.stat().st_size == 0:  # an empty file is a new database to SQLite
        os.chmod(path, 0o600)
        return True
    for each in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(each.stat().st_mode)
            if mode & 0o077:
                os.chmod(each, mode & 0o700)
                log.warning("%s was readable by other users (mode %o): made it owner-only (%o); it holds every "
                            "subscriber's address", each, mode, mode & 0o700)
        except FileNotFoundError:
            continue
        except PermissionError:  # someone else's file opened read-only: not ours to change
            continue
    return False


def _open(path: str | os.PathLike, lock_wait_ms: int) -> sqlite_utils.Database:
    new = False
    if str(path) != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        new = _private_file(Path(path).expanduser())
    db = sqlite_utils.Database(str(Path(path).expanduser()) if str(path) != ":memory:" else ":memory:")
    # WAL: readers (status, search, Datasette) never block the weekly writer; a crash leaves the
    # last committed transaction intact. busy_timeout: a second process waits instead of failing.
    if str(path) != ":memory:":
        db.enable_wal()
    db.execute(f"PRAGMA busy_timeout = {int(lock_wait_ms)}")
    db.execute("PRAGMA foreign_keys = ON")
    ensure_db_shape(db)
    if new:  # its key is made with it: a key file missing later is a lost key, never a new database's
        create_key(db)
    return db


def db_file(db: sqlite_utils.Database) -> Path | None:
    """The file behind ``db`` (None for an in-memory database)."""
    row = db.execute("PRAGMA database_list").fetchone()
    return Path(row[2]) if row and row[2] else None


@contextmanager
def scratch_copy(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """A throwaway copy of ``db`` for dry runs, made with SQLite's online backup (a consistent
    snapshot, even while another process writes) in a temporary directory that is deleted after.

    Whatever a dry run does — fetch, rank, build digests, reserve items — lands in the copy; the
    real database is only read. The copy has ``scratch = True`` and signs links with the real key
    (a throwaway one if the database has none yet), held in memory: nothing is written beside it.
    """
    key = scratch_key(db)
    with tempfile.TemporaryDirectory(prefix="spsbot-dry-run-") as folder:
        conn = sqlite3.connect(str(Path(folder) / "dry-run.db"))
        db.conn.backup(conn)
        copy = sqlite_utils.Database(conn)
        copy.scratch, copy._spsbot_key = True, key
        try:
            yield copy
        finally:
            copy.close()


def integrity_problem(db: sqlite_utils.Database) -> str | None:
    """None when ``PRAGMA quick_check`` finds the file sound, else what it found (one line).

    quick_check reads every page (b-tree structure, record formats, NOT NULL) but skips the
    index-content cross-check of integrity_check, so it stays fast on a large store.
    """
    try:
        rows = [str(r[0]) for r in db.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as e:
        return f"{type(e).__name__}: {e}"
    if rows == ["ok"]:
        return None
    return " ".join("; ".join(rows).split())[:300]
