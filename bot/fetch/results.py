"""What the fetch stage returns: one ``SourceResult`` per source, a ``FetchResult`` for a fetch.

A source that kept going past a failed batch or feed is *partial*: its ``problems`` say what
failed (one line each) and the rest of what it read is stored. A source that raised is *failed*
for this fetch; the other sources go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OK, PARTIAL, FAILED = "ok", "partial", "failed"


@dataclass
class SourceResult:
    """One source's fetch: what its ``runs`` row records, and what failed along the way."""

    counts: dict = field(default_factory=dict)        # fetched/new/updated/unchanged + source-specific
    problems: list[str] = field(default_factory=list)  # one line per failed batch, search or feed
    error: str | None = None                           # the runs row's error line (None: none recorded)
    failure: str | None = None                         # set by ``fetch_all`` when the source raised

    @property
    def status(self) -> str:
        """``failed`` (it raised), ``partial`` (a batch, search or feed failed, the rest was
        stored) or ``ok``."""
        if self.failure:
            return FAILED
        return PARTIAL if self.problems else OK

    @property
    def problem_line(self) -> str | None:
        """What the fetch reports for a failed or partial source (one line), else None."""
        if self.failure:
            return self.failure
        if not self.problems:
            return None
        return (self.error or "; ".join(self.problems))[:500]


@dataclass
class FetchResult:
    """Every source one fetch ran, in the order it ran them."""

    results: dict[str, SourceResult] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, dict]:
        """source -> counts, for every source that did not fail (partial ones included)."""
        return {name: r.counts for name, r in self.results.items() if r.status != FAILED}

    @property
    def errors(self) -> dict[str, str]:
        """source -> one line, for every source that failed or was partial."""
        return {name: r.problem_line for name, r in self.results.items() if r.status != OK}

    @property
    def status(self) -> str:
        if not self.errors:
            return OK
        return PARTIAL if self.counts else FAILED

    @property
    def new_items(self) -> int:
        return sum(c.get("new", 0) for c in self.counts.values())
