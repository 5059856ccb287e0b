"""The weekly job as one library call: fetch → rank → build digests → send.

``run_weekly(db, config)`` is what ``spsbot run`` (and cron) runs; tests and benchmarks call it
directly. It returns a ``RunResult``; the CLI maps ``RunResult.status`` to an exit code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger("spsbot")

# A run's outcome, as recorded in ``runs.status`` and mapped to exit codes by the CLI.
OK, PARTIAL, NOTHING_NEW, FAILED = "ok", "partial", "nothing_new", "failed"


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
    error: str | None = None                                # why the run failed, one line

    @property
    def status(self) -> str:
        """failed (nothing could be done), partial (a source failed, the rest went out),
        ok (something was sent) or nothing_new."""
        if self.error or self.fetch_status == FAILED:
            return FAILED
        if self.fetch_status == PARTIAL:
            return PARTIAL
        return OK if self.sent else NOTHING_NEW

    def counts(self) -> dict:
        """What the ``runs`` row records."""
        return {"new_items": self.new_items, "queued": self.queued, "sent": self.sent,
                "failed": self.failed, "deferred": self.deferred}


def run_weekly(db, config, *, fetch: bool = True, rank: bool = True, dry_run: bool = False,
               progress: bool = False, fetch_options: dict | None = None) -> RunResult:
    """Run every stage once; a failing source does not stop the others, a failed fetch of every
    source stops before building digests (nothing new could be known).

    ``fetch_options``: per-source keyword arguments for ``fetch_all`` (tests and benchmarks pass
    a client without request spacing: ``{"pubmed": {"client": …}}``).
    """
    from bot.digest.builder import build_digests
    from bot.digest.send import SendError, send_pending

    result = RunResult(fetch_status=OK if fetch else "skipped")
    if fetch:
        from bot.fetch import fetch_all
        fetched = fetch_all(db, config, progress=progress, **(fetch_options or {}))
        result.fetch_status, result.fetch_errors, result.new_items = fetched.status, fetched.errors, fetched.new_items
        log.info("run fetch: %s, %d new item(s)%s", fetched.status, fetched.new_items,
                 "; failed: " + ", ".join(f"{k} ({v})" for k, v in fetched.errors.items()) if fetched.errors else "")
        if fetched.status == FAILED:
            result.error = "every source failed: " + "; ".join(f"{k}: {v}" for k, v in fetched.errors.items())
            log.error("run: every source failed; no digest built (no network here? `spsbot demo` runs the "
                      "whole pipeline on bundled recorded data)")
            return result
    if rank:
        from bot.store.ranking import rank_items
        ranked = rank_items(db, config, progress=progress)
        log.info("run rank: %s", ", ".join(f"{k} {v}" for k, v in (ranked or {}).items()
                                            if isinstance(v, (int, float))) or "done")
    built = build_digests(db, config, progress=progress)
    result.queued = len(built.built)
    log.info("run digest: %d queued, %d with nothing new, %d not due", len(built.built), built.empty, built.skipped)
    if dry_run:
        result.would_send = len(send_pending(db, config, dry_run=True).dry_run)
        log.info("run send: dry run, %d message(s) would be sent", result.would_send)
        return result
    try:
        sent = send_pending(db, config, progress=progress)
    except SendError as e:
        result.error = str(e)
        log.error("run send: %s", e)
        return result
    result.sent, result.failed, result.deferred = sent.sent, sent.failed, sent.deferred
    log.info("run send: %d sent, %d failed, %d deferred", sent.sent, sent.failed, sent.deferred)
    return result
