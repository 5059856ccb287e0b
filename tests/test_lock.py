"""The database lock: a second writer refuses clearly; a killed holder leaves no stale lock."""

import signal
import time

import pytest

from bot.lock import LockBusy, db_lock
from conftest import hold_db_lock

def test_second_holder_is_refused_with_the_holders_pid(tmp_path):
    db_path = tmp_path / "spsbot.db"
    process = hold_db_lock(db_path)
    try:
        with pytest.raises(LockBusy, match=rf"another spsbot run \(pid {process.pid}\) is using"):
            with db_lock(db_path):
                pass
    finally:
        process.kill()
        process.wait()


def test_kill_9_releases_the_lock(tmp_path):
    db_path = tmp_path / "spsbot.db"
    process = hold_db_lock(db_path)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 5
    while True:
        try:
            with db_lock(db_path):
                break
        except LockBusy:
            assert time.monotonic() < deadline, "lock not released after SIGKILL"
            time.sleep(0.05)


def test_lock_is_reentrant_after_release(tmp_path):
    with db_lock(tmp_path / "x.db"):
        pass
    with db_lock(tmp_path / "x.db"):
        pass
