"""The one base class for errors meant for the user (layer 0: imports nothing of spsbot).

A ``UserError`` is a problem the user can act on — a mistake in the configuration, a bad address,
a busy lock, an unreachable SMTP server — and its ``str()`` is the message to show them (one line
per problem, no traceback). Domain errors subclass it (``ConfigError``, ``SubscriberError``,
``SendError``, …); the command line converts them in one place (``bot.cli.base.ScrubbingGroup``)
to ``Error: <message>`` on stderr, secrets scrubbed, and the error's ``exit_code``.

Anything else that escapes a command is a bug and is shown as one (``bot.cli.main``), never
dressed up as a user mistake.
"""

from __future__ import annotations

__all__ = ["UserError", "EXIT_USER_ERROR", "one_line", "shorten"]

# `spsbot`'s exit code for a user mistake (README "Exit codes"; bot.cli.base.EXIT_FAILURE).
EXIT_USER_ERROR = 1


class UserError(Exception):
    """An error whose message is for the user; ``exit_code`` is the CLI's exit status for it.

    Subclasses keep their historical second base (``ValueError``, ``RuntimeError``) so code that
    catches those still does; a subclass whose contract needs another exit code sets the class
    attribute, and one instance can override it with ``exit_code=``.
    """

    exit_code: int = EXIT_USER_ERROR

    def __init__(self, *args, exit_code: int | None = None):
        super().__init__(*args)
        if exit_code is not None:
            self.exit_code = exit_code


def one_line(error: BaseException) -> str:
    """``TypeName: first line of the message``: how a failure is named in a log line, a run's
    recorded error or a source's FAILED line, when the error is reported as data, not raised."""
    return f"{type(error).__name__}: {error}".splitlines()[0]


def shorten(text: str, limit: int) -> str:
    """``text`` on one line within ``limit`` characters, cut at whole words in the middle.

    An error line names what failed first and why last (``pubmed https://…/esearch.fcgi:
    connection failed: Failed to resolve 'eutils.ncbi.nlm.nih.gov' … (gave up after 5 attempts)``),
    so both ends are kept and the words between them give way to "…": the cause is never cut.
    """
    words = str(text).split()
    line = " ".join(words)
    if len(line) <= limit:
        return line
    head, tail = [], []
    budget = limit - 2  # " …"
    # a third for what failed, the rest for why: the cause is at the end
    while words and len(" ".join(head + words[:1])) <= budget // 3:
        head.append(words.pop(0))
    while words and len(" ".join(head + ["…"] + words[-1:] + tail)) <= limit:
        tail.insert(0, words.pop())
    if not tail and words:  # one word longer than the limit: its end, cut inside it, is all that fits
        return ("…" + words[-1][-(limit - 1):]) if not head else " ".join(head + ["…"])
    return " ".join(head + ["…"] + tail)
