"""Benchmark: how long is the at-least-once window of the outbox?

Between the SMTP server's ``250`` for a message and the commit that marks its delivery *sent*, a
crash (or a failed write) leaves the delivery pending although the message went out: the next run
sends it again (same Message-ID). ``send_pending`` measures that interval for every message it
sends (``SendResult.commit_windows``); this script sends N digests through a local aiosmtpd
server to a database on the disk you name (default: a temporary folder under the current
directory, i.e. the same disk as a checkout) and prints the distribution, plus the share of the
whole send time that lies inside a window (the chance that a crash at a random instant of a
send lands in one). Figures only, no pass/fail.

Usage: .venv/bin/python bench/send_window.py [MESSAGES] [DIRECTORY]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ["SPSBOT_NOW"] = "2026-11-23T06:00:00+00:00"

from bot.config import load_config  # noqa: E402
from bot.digest.builder import build_digests  # noqa: E402
from bot.digest.send import send_pending  # noqa: E402
from bot.digest.subscribers import add_subscriber  # noqa: E402
from bot.store import open_db  # noqa: E402
from conftest import SmtpServer  # noqa: E402
from digest_support import NOW, paper, seed  # noqa: E402


def main(messages: int = 300, directory: str = ".") -> None:
    with tempfile.TemporaryDirectory(dir=directory) as folder, SmtpServer() as server:
        db = open_db(Path(folder) / "spsbot.db")
        sync = db.execute("PRAGMA synchronous").fetchone()[0]
        seed(db, [paper(i, f"Paper {i} on stiff person syndrome") for i in range(1, 6)])
        config = load_config(env={"SPSBOT_SMTP_URL": server.url})
        for i in range(messages):
            add_subscriber(db, f"reader{i}@example.org", valid_themes=config.theme_names)
        build_digests(db, config, now=NOW)
        started = time.perf_counter()
        result = send_pending(db, config)
        elapsed = time.perf_counter() - started
        db.close()
    windows = sorted(w * 1000 for w in result.commit_windows)
    q = statistics.quantiles(windows, n=100)
    print(f"messages sent: {result.sent} to a local aiosmtpd; database in {Path(directory).resolve()} "
          f"(WAL, synchronous={sync})")
    print(f"window 250 -> commit, ms: median {statistics.median(windows):.3f}, p95 {q[94]:.3f}, "
          f"p99 {q[98]:.3f}, max {windows[-1]:.3f}")
    print(f"whole send: {elapsed:.2f} s ({elapsed / result.sent * 1000:.2f} ms per message); "
          f"inside a window: {sum(windows) / 1000 / elapsed:.1%} of it")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 300, args[1] if len(args) > 1 else ".")
