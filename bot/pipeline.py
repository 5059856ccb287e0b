"""The weekly job as one library call: fetch → rank → build digests → send.

``run_weekly(db, config)`` is what ``spsbot run`` (and cron) runs; tests and benchmarks call it
directly. It returns a ``RunResult``; the CLI maps ``RunResult.status`` to an exit code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.errors import shorten
from bot.fetch.results import FAILED, OK, PARTIAL

log = logging.getLogger("spsbot")

# A run's outcome, as recorded in ``runs.status`` and mapped to exit codes by the CLI (a fetch's
# ok / partial / failed are the same words).
NOTHING_NEW = "nothing_new"


@dataclass
class RunResult:
    fetch_status: str = OK                                  # ok | partial | failed | skipped
    fetch_errors: dict[str, str] = field(default_factory=dict)
    new_items: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    would_send: int = 0                                     # --dry-run: messages that would go out
    dry_run: list[dict] = field(default_factory=list)       # --dry-run: those messages (to, subject, bytes)
    error: str | None = None                                # why the run failed, one line
    delivery_failures: list[str] = field(default_factory=list)  # "address: why", permanent failures
    not_due: int = 0                                        # subscribers not due (or a delivery pending)
    empty: int = 0                                          # due, but nothing new for them
    stages: list[str] = field(default_factory=list)         # one phrase per stage, for the run's log line

    @property
    def status(self) -> str:
        """failed (nothing could be done, or every attempted delivery failed for good), partial
        (a source or some deliveries failed, the rest went out), ok (something was sent) or
        nothing_new. A delivery refused for good (5xx) is never hidden behind "nothing new"."""
        if self.error or self.fetch_status == FAILED or (self.failed and not self.sent):
            return FAILED
        if self.fetch_status == PARTIAL or self.failed:
            return PARTIAL
        return OK if self.sent else NOTHING_NEW

    @property
    def summary_error(self) -> str | None:
        """What the ``runs`` row and the CLI report as the run's error (one line)."""
        if self.error:
            return self.error
        if self.failed:
            return delivery_failure_line(self.failed, self.delivery_failures)
        return None

    def counts(self) -> dict:
        """What the ``runs`` row records."""
        return {"new_items": self.new_items, "queued": self.queued, "sent": self.sent,
                "failed": self.failed, "deferred": self.deferred}


def why_nothing(not_due: int, empty: int) -> str:
    """Why no message would go out of a digest build: "1 not due", "2 with nothing new"…"""
    reasons = [f"{not_due} not due" if not_due else "", f"{empty} with nothing new" if empty else ""]
    return ", ".join(r for r in reasons if r) or "no active subscriber"


def delivery_failure_line(failed: int, failures: list[str]) -> str:
    """'2 deliveries failed for good: a@x: 550 …; b@y: 554 …' (one line, shortened)."""
    shown = "; ".join(failures[:3]) + ("; …" if len(failures) > 3 else "")
    return shorten(f"{failed} deliver{'y' if failed == 1 else 'ies'} failed for good: {shown}", 500)


def run_weekly(db, config, *, fetch: bool = True, rank: bool = True, dry_run: bool = False,
               progress: bool = False, deadline_minutes: float | None = None,
               fetch_options: dict | None = None, result: RunResult | None = None) -> RunResult:
    """Run every stage once (into ``result`` when given: what was done is there even if a stage
    raises); a failing source does not stop the others, a failed fetch of every
    source stops before building digests (nothing new could be known).

    The run has a deadline (``deadline_minutes``, else ``[run] deadline_minutes``): once it has
    passed no HTTP request is made, and the run stops at the next stage boundary with
    ``RunResult.error`` saying so (a stage already running, such as ranking a backfill, finishes).
    ``fetch_options``: per-source keyword arguments for ``fetch_all`` (tests and benchmarks pass
    a client without request spacing: ``{"pubmed": {"client": …}}``).

    ``dry_run``: every stage runs, on a throwaway copy of the database (``scratch_copy``), and
    the result lists what would be sent; the real database is only read.
    """
    if dry_run and not getattr(db, "scratch", False):
        from bot.store import scratch_copy
        with scratch_copy(db) as scratch:
            return run_weekly(scratch, config, fetch=fetch, rank=rank, dry_run=True, progress=progress,
                              deadline_minutes=deadline_minutes, fetch_options=fetch_options, result=result)
    from bot.sources import http
    minutes = deadline_minutes if deadline_minutes is not None else config.section("run").get("deadline_minutes")
    with http.limits(**http.limits_from_config(config), run_seconds=float(minutes) * 60 if minutes else None):
        return _run_stages(db, config, fetch=fetch, rank=rank, dry_run=dry_run, progress=progress,
                           minutes=float(minutes) if minutes else None, fetch_options=fetch_options,
                           result=result or RunResult())


def _deadline_error(minutes: float | None, stage: str) -> str | None:
    """The run's error when its deadline passed during ``stage`` (None while time is left)."""
    from bot.sources.http import run_time_left
    left = run_time_left()
    if left is None or left > 0:
        return None
    return (f"the run's deadline ({minutes:g} min, [run] deadline_minutes) passed during {stage}; "
            "stopped there, the next run carries on")


def _run_stages(db, config, *, fetch: bool, rank: bool, dry_run: bool, progress: bool,
                minutes: float | None, fetch_options: dict | None, result: RunResult) -> RunResult:
    from bot.digest.builder import build_digests
    from bot.digest.send import SendError, send_pending

    result.fetch_status = OK if fetch else "skipped"
    from bot.store import integrity_problem
    problem = integrity_problem(db)
    if problem:  # a damaged outbox could send twice, or to the wrong people: stop before anything
        result.error = f"the database fails PRAGMA quick_check ({problem}); nothing fetched or sent"
        log.error("run: %s", result.error)
        return result
    from bot.digest.confirmations import KEEP_SIGNUPS_DAYS, forget_old_signups
    forgotten = forget_old_signups(db)  # on time even where no web front runs its mailer
    if forgotten:
        log.info("run: %d sign-up request(s) older than %d days forgotten", forgotten, KEEP_SIGNUPS_DAYS)
    if fetch:
        from bot.fetch import fetch_all
        fetched = fetch_all(db, config, progress=progress, **(fetch_options or {}))
        result.fetch_status, result.fetch_errors, result.new_items = fetched.status, fetched.errors, fetched.new_items
        _stage(result, "fetch", f"{fetched.status}, {fetched.new_items} new item(s)"
               + ("; failed: " + ", ".join(f"{k} ({v})" for k, v in fetched.errors.items()) if fetched.errors else ""))
        if fetched.status == FAILED:
            result.error = "every source failed: " + "; ".join(f"{k}: {v}" for k, v in fetched.errors.items())
            log.error("run: every source failed; no digest built (no network here? `spsbot demo` runs the "
                      "whole pipeline on bundled recorded data)")
            return result
        result.error = _deadline_error(minutes, "fetch")
        if result.error:
            log.error("run: %s", result.error)
            return result
    if rank:
        from bot.ranking.stage import rank_items
        from bot.store.status import relevant_item_count
        ranked = rank_items(db, config, progress=progress) or {}
        # "relevant" counts the items scored now; the store's total is what a reader expects
        _stage(result, "rank", f"{ranked.get('scored', 0)} scored now ({ranked.get('relevant', 0)} of them "
                               f"relevant), {ranked.get('unchanged', 0)} unchanged; "
                               f"{relevant_item_count(db)} relevant in the store")
        result.error = _deadline_error(minutes, "rank")
        if result.error:
            log.error("run: %s", result.error)
            return result
    built = build_digests(db, config, progress=progress)
    result.queued, result.not_due, result.empty = len(built.built), built.skipped, built.empty
    _stage(result, "digest", f"{len(built.built)} queued, {built.empty} with nothing new, {built.skipped} not due")
    if dry_run:
        result.dry_run = send_pending(db, config, dry_run=True).dry_run
        result.would_send = len(result.dry_run)
        _stage(result, "send", f"dry run, {result.would_send} message(s) would be sent")
        return result
    result.error = _deadline_error(minutes, "digest building")
    if result.error:
        log.error("run: %s; the digests are queued and go out next run", result.error)
        return result
    try:
        sent = send_pending(db, config, progress=progress)
    except SendError as e:
        result.error = str(e)
        result.stages.append("send failed")
        log.error("run send: %s", e)
        return result
    result.sent, result.failed, result.deferred = sent.sent, sent.failed, sent.deferred
    result.delivery_failures = sent.failures
    _stage(result, "send", f"{sent.sent} sent, {sent.failed} failed, {sent.deferred} deferred")
    return result


def _stage(result: RunResult, name: str, summary: str) -> None:
    """Log one stage's line and keep it for the run's closing line."""
    log.info("run %s: %s", name, summary)
    result.stages.append(f"{name} {summary}")
