"""The Click group, global options and the shared context every command uses.

Commands live in sibling modules (one per stage) and register themselves on ``cli``. They stay
thin: parse options, call a library function, print. A library's ``bot.errors.UserError`` (and
the CLI's own ClickException) becomes one line on stderr and its exit code, converted once in
``ScrubbingGroup``; exit codes are an interface for cron (see EXIT_* below).
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click
import platformdirs

from bot import __version__
from bot.config import Config, load_config
from bot.errors import UserError
from bot.redact import scrub

# Exit codes (documented in the README): cron and monitoring tell these apart.
EXIT_OK = 0            # done: something was fetched/sent
EXIT_FAILURE = 1       # failed: nothing (more) was done; the error is on stderr
EXIT_USAGE = 2         # bad command line (Click's own code)
EXIT_NOTHING_NEW = 3   # ran fine, but nothing new to send
EXIT_PARTIAL = 4       # a source failed, the rest went through (the run is marked partial)
EXIT_STALE = 5         # `spsbot status`: a source has not succeeded for too long
EXIT_RUN_FAILED = 6    # `spsbot status`: the last `spsbot run` failed or was killed
EXIT_DELIVERIES_FAILING = 7  # `spsbot status`: messages are being retried, or failed/bounced lately
EXIT_CONFIG_INVALID = 8      # `spsbot status`: the configuration does not load
EXIT_SOURCE_FAILED = 9       # `spsbot status`: a source's last attempt failed (not stale yet)

log = logging.getLogger("spsbot")


def default_db_path() -> str:
    return str(Path(platformdirs.user_data_dir("spsbot")) / "spsbot.db")


@dataclass
class AppContext:
    db_path: str
    config_path: str | None
    quiet: bool = False
    _db: object = field(default=None, repr=False)
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)  # ConfigError: one line, exit 1
        return self._config

    def check_config(self) -> Config:
        """Load the configuration even where a command only reads the database: a broken
        configuration is one line and exit 1 for every command, not only for the next run."""
        return self.config

    @property
    def db(self):
        """The database. Where there is none yet, the command's ``without_database`` rule
        decides: create it, work on an empty one in memory, or (every unmarked command) refuse
        with MissingDatabaseError — one line, exit 1, nothing left behind."""
        if self._db is None:
            from bot.store import database_exists, open_db
            rule = None if database_exists(self.db_path) else _rule_without_database()
            if rule == EMPTY:
                log.info("no database at %s yet: working on an empty one in memory (nothing is written)",
                         self.db_path)
                self._db = open_db(":memory:")
            else:  # DatabaseOpenError: "cannot open database …" / "no database at …" (REFUSE), exit 1
                self._db = open_db(self.db_path, create=rule == CREATE)
                if rule == CREATE:  # said, so that a new database on a mistyped path is seen at once
                    log.info("created a new database at %s", self.db_path)
        return self._db

    @property
    def show_progress(self) -> bool:
        """Progress bars on a terminal only: quiet under cron, CI and pipes."""
        return not self.quiet and sys.stderr.isatty()


# What a command does where there is no database yet (``without_database``; ``AppContext.db``).
CREATE = "create"    # make it: the first run or fetch, the first subscribers, a new install's web front
EMPTY = "empty"      # work on an empty one in memory, nothing written: dry runs, live-only searches
REFUSE = "refuse"    # one line naming the path and the next step: every command not marked otherwise


def without_database(rule):
    """Mark what a command does where there is no database yet: CREATE, EMPTY or REFUSE, or a
    function of the command's params returning one. Unmarked commands REFUSE: on a wrong --db /
    SPSBOT_DB, `status` or `unsubscribe` would otherwise show a new empty database ("0
    subscribers") and leave it behind, a second database from then on. Put it above ``@cli.command()``."""
    def mark(cmd: click.Command) -> click.Command:
        cmd.without_database = rule if callable(rule) else (lambda params: rule)
        return cmd
    return mark


def _rule_without_database() -> str:
    """The running command's ``without_database`` rule for its params (REFUSE when unmarked)."""
    ctx = click.get_current_context(silent=True)
    rule = getattr(ctx.command, "without_database", None) if ctx is not None else None
    return rule(ctx.params) if rule else REFUSE


class ScrubbingFormatter(logging.Formatter):
    """Log lines (and tracebacks) with every secret removed (``bot.redact.scrub``)."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def user_error_exception(error: UserError) -> click.ClickException:
    """The ClickException Click prints for ``error``: ``Error: <message>`` (secrets scrubbed)
    and its exit code."""
    exception = click.ClickException(scrub(str(error)))
    exception.exit_code = error.exit_code
    return exception


class ScrubbingGroup(click.Group):
    """The one place errors meant for the user are turned into what the user sees.

    A ``UserError`` from any command (or the library it calls) becomes Click's one line
    ``Error: <message>`` with the error's exit code, no traceback; that line, like a command's own
    ClickException, never carries a secret, whatever it quotes. Every other exception is a bug and
    propagates unchanged (``bot.cli.main`` names its type; ``-v`` logs the traceback).
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as e:
            raise user_error_exception(e) from None
        except click.ClickException as e:
            e.message = scrub(e.message)
            raise


def exit_with(code: int, error: str | None = None) -> None:
    """End a command with exit status ``code`` (the one way commands exit with a code), after
    ``Error: <error>`` on stderr (secrets scrubbed) when the result is a failure worth a line."""
    if error:
        click.echo(f"Error: {scrub(error)}", err=True)
    sys.exit(code)


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter (HTTP connection pools, model loading) only in --verbose.
    for noisy in ("urllib3", "sentence_transformers", "filelock", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


@click.group(cls=ScrubbingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spsbot")
@click.option("--db", "db_path", envvar="SPSBOT_DB", type=click.Path(dir_okay=False),
              default=default_db_path, show_default="the user data dir's spsbot.db",
              help="SQLite database file (env SPSBOT_DB).")
@click.option("--config", "config_path", envvar="SPSBOT_CONFIG", type=click.Path(dir_okay=False),
              default=None, help="TOML configuration (env SPSBOT_CONFIG); default: the bundled SPS profile.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for HTTP details).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.pass_context
def cli(ctx: click.Context, db_path: str, config_path: str | None, verbose: int, quiet: bool) -> None:
    """Literature surveillance for Stiff Person Syndrome: PubMed, ClinicalTrials.gov and feeds,
    ranked by theme and e-mailed as a weekly digest."""
    setup_logging(verbose, quiet)
    ctx.obj = AppContext(db_path=db_path, config_path=config_path, quiet=quiet)
    ctx.call_on_close(lambda: ctx.obj._db is not None and ctx.obj._db.close())


pass_app = click.make_pass_decorator(AppContext)


@contextmanager
def locked(app: AppContext, what: str):
    """Hold the database's writer lock (``bot.lock``); another holder is LockBusy: one line, exit 1.
    The database is opened first: a command that may not create it refuses before a lock file is made."""
    from bot.lock import db_lock
    app.db  # noqa: B018
    with db_lock(app.db_path, what):
        from bot.store import mark_interrupted_runs
        mark_interrupted_runs(app.db)  # we hold the lock: any "running" row is a dead process's
        yield
