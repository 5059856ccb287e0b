"""Crash safety: kill -9 the REAL ``spsbot`` process (the installed console script) mid-fetch,
mid-rank and mid-send, then run it again: no item lost, no duplicate row, no e-mail lost, none
sent twice (except the one window SMTP cannot close, tested and documented below), and the
database passes ``PRAGMA integrity_check``. Two runs at once: the second refuses (a lock).

The process dies through ``bot.faults.crash_point`` (env ``SPSBOT_CRASH_AT=point[@N]``), which
sends itself SIGKILL: no ``finally``, no atexit, no SQLite close — the same as a power cut for
everything above the kernel.

Cost control: the session's ``ranked_demo_db`` (tests/conftest.py) fetched the demo records and
ranked them with the real model once: a *template* database (items, scores, the embedding cache).
Crash tests start either from a copy of it, or from an empty database whose embedding cache is
pre-filled from it, so the real ``spsbot`` processes never need the model.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest

from bot.replay import demo_data_dir
from bot.digest.subscribers import add_subscriber
from bot.replay import LocalServer, Response
from bot.replay.ctgov import demo_responder
from bot.replay.eutils import eutils_responder
from bot.store import open_db
from bot.ranking.stage import RANK_BATCH
from conftest import SmtpServer, clean_env, copy_db, prewarm_embeddings, spsbot, spsbot_path
from faults.helpers import error_lines, integrity

NOW = "2026-11-21T06:00:00+00:00"   # the demo records end on 2026-11-20
SUBSCRIBERS = ["ann@example.org", "bob@example.org", "cyd@example.org"]
CONFIG = """\
[sources.pubmed]
batch_size = 20          # the 85 demo papers arrive in 5 batches: a crash can fall between them
min_interval = 0.0       # the emulator is local: no NCBI rate limit to respect
[sources.clinicaltrials]
min_interval = 0.0
"""


class World:
    """The local PubMed and CT.gov emulators, a config, a shared model cache and the template DB."""

    def __init__(self, root: Path, stack: ExitStack):
        self.root = root
        self.eutils = stack.enter_context(LocalServer(eutils_responder(demo_data_dir("pubmed"))))
        self.ctgov = stack.enter_context(LocalServer(demo_responder(1)))
        self.config = root / "spsbot.toml"
        self.config.write_text(CONFIG, encoding="utf-8")
        self.template = root / "template.db"

    def env(self, db_path: Path, smtp=None, **extra) -> dict:
        settings = dict(SPSBOT_DB=db_path, SPSBOT_CONFIG=self.config, SPSBOT_NOW=NOW,
                        SPSBOT_EUTILS_URL=self.eutils.url + "/entrez/eutils", SPSBOT_CTGOV_URL=self.ctgov.url,
                        SPSBOT_SMTP_URL=smtp.url if smtp else "smtp://127.0.0.1:9")
        return clean_env(self.root, **{**settings, **extra})


@pytest.fixture(scope="module")
def world(tmp_path_factory, ranked_demo_db):
    root = tmp_path_factory.mktemp("crash")
    with ExitStack() as stack:
        w = World(root, stack)
        # The session's template: the demo records fetched and ranked with the real model once
        # (nobody subscribed, nothing sent). Each test copies it or takes its embedding cache.
        copy_db(ranked_demo_db, w.template)
        yield w


def subscribe(db_path: Path, emails=SUBSCRIBERS) -> None:
    from bot.config import load_config
    db = open_db(db_path)
    for address in emails:
        add_subscriber(db, address, valid_themes=load_config(env={}).theme_names)
    db.close()


def per_recipient(smtp) -> Counter:
    return Counter(smtp.recipients())


def check_store(db_path: Path, template: Path | None = None) -> dict:
    """Integrity, no duplicate rows; with ``template``: exactly its items, each scored once."""
    db = open_db(db_path)
    try:
        assert integrity(db) == "ok"
        assert db.execute("select count(*) = count(distinct pmid) from items where pmid is not null").fetchone()[0]
        assert db.execute("select count(*) = count(distinct nct_id) from items where nct_id is not null").fetchone()[0]
        sent = db.execute("select count(*), count(distinct subscriber_id || '|' || item_id) from sent_items").fetchone()
        assert sent[0] == sent[1], "an item was recorded as sent twice to one subscriber"
        ids = {r[0] for r in db.execute("select id from items")}
        if template is not None:
            expected = {r[0] for r in sqlite3.connect(template).execute("select id from items")}
            assert ids == expected, f"lost: {sorted(expected - ids)[:5]} extra: {sorted(ids - expected)[:5]}"
            scored = db.execute("select count(*), count(distinct item_id) from scores").fetchone()
            assert scored[0] == scored[1] == len(ids)
        return {"items": len(ids), "deliveries": Counter(r[0] for r in db.execute("select status from deliveries"))}
    finally:
        db.close()


def killed(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == -9


def test_kill_9_mid_fetch_then_rerun_loses_nothing(world, tmp_path):
    db_path = tmp_path / "spsbot.db"
    prewarm_embeddings(db_path, world.template)
    subscribe(db_path)
    with SmtpServer() as smtp:
        crash = spsbot("run", env=world.env(db_path, smtp, SPSBOT_CRASH_AT="fetch:after_batch@2"))
        assert killed(crash), crash.stderr[-2000:]
        db = open_db(db_path)
        assert integrity(db) == "ok"
        assert db["items"].count == 40  # two stored batches of 20, nothing half-written
        assert not list(db["source_state"].rows), "state advanced although the fetch never finished"
        assert db.execute("select status from runs where command = 'run'").fetchone()[0] == "running"
        db.close()
        assert not smtp.messages

        again = spsbot("run", env=world.env(db_path, smtp))
        assert again.returncode == 0, again.stderr[-2000:]
        assert per_recipient(smtp) == Counter(SUBSCRIBERS)  # everyone exactly once
    store = check_store(db_path, world.template)
    assert store["deliveries"] == Counter({"sent": 3})
    db = open_db(db_path)
    # the killed run is shown for what it was, not as "running" forever
    assert [r[0] for r in db.execute("select status from runs where command = 'run' order by id")] == \
        ["interrupted", "ok"]
    assert not db.execute("select count(*) from runs where status = 'running'").fetchone()[0]
    db.close()


def test_kill_9_mid_rank_then_rerun_scores_everything_once(world, tmp_path):
    db_path = tmp_path / "spsbot.db"
    prewarm_embeddings(db_path, world.template)
    subscribe(db_path)
    with SmtpServer() as smtp:
        crash = spsbot("run", env=world.env(db_path, smtp, SPSBOT_CRASH_AT="rank:after_batch"))
        assert killed(crash), crash.stderr[-2000:]
        db = open_db(db_path)
        assert integrity(db) == "ok" and db["items"].count == 91
        assert db["scores"].count == RANK_BATCH  # the first saved batch survives, the rest never began
        assert not db["digests"].count
        db.close()
        assert not smtp.messages

        again = spsbot("run", env=world.env(db_path, smtp))
        assert again.returncode == 0, again.stderr[-2000:]
        assert per_recipient(smtp) == Counter(SUBSCRIBERS)
    check_store(db_path, world.template)


@pytest.mark.parametrize("nth", [1, 2])
def test_kill_9_before_smtp_then_rerun_sends_each_once(world, tmp_path, nth):
    db_path = copy_db(world.template, tmp_path / "spsbot.db")
    subscribe(db_path)
    with SmtpServer() as smtp:
        crash = spsbot("run", env=world.env(db_path, smtp, SPSBOT_CRASH_AT=f"send:before_smtp@{nth}"))
        assert killed(crash), crash.stderr[-2000:]
        assert len(smtp.messages) == nth - 1
        assert check_store(db_path)["deliveries"] == Counter({"sent": nth - 1, "pending": 3 - (nth - 1)})

        again = spsbot("run", env=world.env(db_path, smtp))
        assert again.returncode == 0, again.stderr[-2000:]
        assert per_recipient(smtp) == Counter(SUBSCRIBERS)  # none lost, none twice
        ids = [m["Message-ID"] for m in smtp.messages]
        assert len(set(ids)) == 3
        third = spsbot("digest", "send", env=world.env(db_path, smtp))  # and nothing more later
        assert third.stdout.strip() == "sent 0, failed 0, deferred 0" and len(smtp.messages) == 3
    assert check_store(db_path, world.template)["deliveries"] == Counter({"sent": 3})


def test_kill_9_after_smtp_accepted_resends_the_same_message_id(world, tmp_path):
    """The one window SMTP cannot close: the server said 250, the process died before the
    delivery was marked sent. spsbot chooses at-least-once: the re-run sends that one message
    again with the SAME Message-ID (mail clients show it once); nothing is lost, and no other
    message is repeated."""
    db_path = copy_db(world.template, tmp_path / "spsbot.db")
    subscribe(db_path)
    with SmtpServer() as smtp:
        crash = spsbot("run", env=world.env(db_path, smtp, SPSBOT_CRASH_AT="send:after_smtp@2"))
        assert killed(crash), crash.stderr[-2000:]
        assert len(smtp.messages) == 2
        again = spsbot("run", env=world.env(db_path, smtp))
        assert again.returncode == 0, again.stderr[-2000:]
        counts = per_recipient(smtp)
        assert set(counts) == set(SUBSCRIBERS)          # no e-mail lost
        assert counts == Counter({SUBSCRIBERS[0]: 1, SUBSCRIBERS[1]: 2, SUBSCRIBERS[2]: 1})
        twice = [m for m in smtp.messages if m["To"] == SUBSCRIBERS[1]]
        assert twice[0]["Message-ID"] == twice[1]["Message-ID"]
        assert twice[0].get_body(("plain",)).get_content() == twice[1].get_body(("plain",)).get_content()
        assert len({m["Message-ID"] for m in smtp.messages}) == 3  # distinct messages: exactly one each
    assert check_store(db_path, world.template)["deliveries"] == Counter({"sent": 3})


def test_second_concurrent_run_refuses_with_one_line(world, tmp_path):
    """A run that is stuck on a slow server holds the lock; run, fetch and digest send started
    meanwhile each refuse with one line (exit 1) and change nothing."""
    release = threading.Event()

    def stuck(request):
        release.wait(60)
        return Response(400, "Bad Request", "text/plain")
    db_path = copy_db(world.template, tmp_path / "spsbot.db")
    subscribe(db_path)
    before = check_store(db_path)
    with LocalServer(stuck) as slow, SmtpServer() as smtp:
        env = world.env(db_path, smtp, SPSBOT_EUTILS_URL=slow.url + "/entrez/eutils", SPSBOT_CTGOV_URL=slow.url)
        first = subprocess.Popen([spsbot_path(), "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        try:
            lock = Path(str(db_path) + ".lock")
            for _ in range(600):  # wait until the first run holds the lock (it writes its pid there)
                if lock.exists() and f"pid {first.pid}" in lock.read_text():
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the first run never took the lock")
            refusals = {}
            for command in (["run"], ["fetch"], ["digest", "send"]):
                second = spsbot(*command, env=env, timeout=60)  # a refusal is immediate; never wait on the server
                refusals[" ".join(command)] = second
                lines = error_lines(second.stderr)
                print(f"BAD INPUT LINE [concurrent {' '.join(command)}]: {lines}")
                assert second.returncode == 1 and len(lines) == 1 and "Traceback" not in second.stderr
                assert "another spsbot run" in lines[0] and f"pid {first.pid}" in lines[0]
        finally:
            release.set()
            first.communicate(timeout=120)
        assert first.returncode == 1  # every source failed: nothing built, nothing sent
        assert not smtp.messages
    assert check_store(db_path) == before
