"""One writer at a time: an advisory lock file beside the database.

Two ``spsbot run`` (say cron and a manual run) at once would fetch twice and could send the
same digest twice; the second one refuses with a clear message instead. The lock is a kernel
``flock``: it is released when the process dies, even by kill -9, so a crash never leaves a
stale lock behind. It is keyed on the database's *real* path (``~`` expanded, symlinks and
``..`` resolved): the same file reached as ``~/x.db``, through a symlink or from another working
directory is one lock, not several.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from bot.errors import UserError


class LockBusy(UserError, RuntimeError):
    """Another spsbot process holds the lock."""


def lock_path(db_path: str | os.PathLike) -> Path:
    """``<real path of the database>.lock``."""
    return Path(os.path.realpath(os.path.expanduser(str(db_path))) + ".lock")


@contextmanager
def db_lock(db_path: str | os.PathLike, what: str = "run") -> Iterator[None]:
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # owner-only like the database: it names the command holding it
    handle = open(path, "a+", encoding="utf-8", opener=lambda name, flags: os.open(name, flags, 0o600))
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LockBusy(f"another spsbot {holder} is using {path.with_suffix('')}; "
                           "try again when it has finished") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{what} (pid {os.getpid()})")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the flock
