"""The writer lock is keyed on the database's real path: the same file reached through a symlink,
as ``~/…``, or from another working directory is one lock (two sends at once would mail every
subscriber twice)."""

from __future__ import annotations

import pytest

from bot.lock import LockBusy, db_lock
from conftest import hold_db_lock

# (A symlinked *folder* was already one lock: the lock file sits in the same real folder.)
@pytest.mark.parametrize("route", ["symlinked file", "~ and another working directory"])
def test_the_same_database_by_another_path_is_the_same_lock(tmp_path, monkeypatch, route):
    real_dir = tmp_path / "data"
    real_dir.mkdir()
    (real_dir / "spsbot.db").touch()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = None
    if route == "symlinked file":
        (tmp_path / "link.db").symlink_to(real_dir / "spsbot.db")
        held, tried = str(real_dir / "spsbot.db"), str(tmp_path / "link.db")
    else:  # SPSBOT_DB='~/data/spsbot.db' from two working directories
        import os
        env = {**os.environ, "HOME": str(tmp_path)}
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.chdir(elsewhere)
        held, tried = "~/data/spsbot.db", "~/data/spsbot.db"
    process = hold_db_lock(held, real_dir if env else tmp_path, env)
    try:
        with pytest.raises(LockBusy, match=rf"another spsbot run \(pid {process.pid}\) is using .*spsbot\.db"):
            with db_lock(tried):
                pass
    finally:
        process.kill()
        process.wait()
    with db_lock(tried):   # released with its holder
        pass
