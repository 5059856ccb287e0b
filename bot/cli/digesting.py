"""Commands for subscribers, digests, unsubscribe, the archive and the weekly ``run``."""

from __future__ import annotations

import json
import logging

import click

from bot.cli.base import (CREATE, EMPTY, EXIT_FAILURE, EXIT_NOTHING_NEW, EXIT_OK, EXIT_PARTIAL, AppContext, cli,
                          exit_with, locked, pass_app, without_database)
from bot.errors import UserError

log = logging.getLogger("spsbot")


# --- subscribers ---------------------------------------------------------------------------

@cli.group()
def subscribers() -> None:
    """Manage digest subscribers (add, remove, list, import)."""


@without_database(CREATE)
@subscribers.command("add")
@click.argument("email")
@click.option("--name", help="Display name used in the greeting and the To: header.")
@click.option("--themes", help="Themes to receive, separated by ';', '|' or ',', or \"all\"; default: all.")
@click.option("--frequency", type=click.Choice(["weekly", "daily", "monthly"]), default=None,
              help="How often (default for a new subscriber: weekly).")
@click.option("--max-items", type=int, default=None, help="Most items per digest (1-200; default 20).")
@click.option("--send-empty/--no-send-empty", default=None, help="Send a digest even when nothing is new.")
@click.option("--style", type=click.Choice(["clinical", "plain"]), default=None,
              help="How the digest is written: clinical (default) or plain words for patients and carers.")
@click.option("--curator/--no-curator", default=None,
              help="Mark (or unmark) a curator: their feedback links record curator labels, which the ranker "
                   "weighs fully; other subscribers' clicks are votes with a lower weight.")
@pass_app
def subscribers_add(app, email, name, themes, frequency, max_items, send_empty, style, curator) -> None:
    """Add a subscriber (or update and re-activate an existing one).

    For an existing address only the options given change; the rest is kept.

    Example: spsbot subscribers add ann@example.org --name "Ann" --themes "immunomodulation;diagnosis"
    """
    from bot.digest.subscribers import add_subscriber
    row, created = add_subscriber(app.db, email, valid_themes=app.config.theme_names, name=name, themes=themes,
                                  frequency=frequency, max_items=max_items, send_empty=send_empty, curator=curator,
                                  style=style)
    click.echo(f"{'added' if created else 'updated'} {row['email']}" + (" (curator)" if row.get("curator") else ""))


@subscribers.command("remove")
@click.argument("email")
@click.option("--purge", is_flag=True,
              help="Delete the subscriber and their history instead of marking them unsubscribed.")
@pass_app
def subscribers_remove(app, email, purge) -> None:
    """Unsubscribe an address (history kept), or delete it with --purge."""
    from bot.digest.subscribers import remove_subscriber
    remove_subscriber(app.db, email, purge=purge)
    click.echo(f"{'deleted' if purge else 'unsubscribed'} {email}")


@subscribers.command("list")
@click.option("--status", type=click.Choice(["active", "unsubscribed", "bouncing"]), help="Only this status.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_app
def subscribers_list(app, status, as_json) -> None:
    """List subscribers with their themes, frequency and status."""
    from bot.digest.subscribers import list_subscribers
    app.check_config()
    for row in list_subscribers(app.db, status):
        if as_json:
            click.echo(json.dumps({**{k: row[k] for k in ("email", "name", "themes", "frequency", "max_items",
                                                           "send_empty", "status", "bounces")},
                                   "curator": bool(row.get("curator"))}))
        else:
            themes = ",".join(row["themes"]) if row["themes"] else "all themes"
            click.echo(f"{row['email']}\t{row['name'] or ''}\t{themes}\t{row['frequency']}\t"
                       f"max {row['max_items']}\t{row['status']}" + ("\tcurator" if row.get("curator") else ""))


@without_database(CREATE)
@subscribers.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--skip-bad", is_flag=True, help="Import the good rows even if some are bad (bad ones are reported).")
@click.option("--resubscribe", is_flag=True,
              help="Also re-activate listed addresses that unsubscribed or bounce (default: they stay out).")
@pass_app
def subscribers_import(app, csv_file, skip_bad, resubscribe) -> None:
    """Import subscribers from CSV (header: email[,name,themes,frequency,max_items,send_empty]).

    Themes are separated by ';' or '|'. Any bad row aborts the import (nothing is written) unless
    --skip-bad. Existing subscribers keep every field the CSV leaves out or blank, and an address
    that unsubscribed stays unsubscribed unless --resubscribe: importing the same list every week
    is safe.
    """
    from bot.digest.subscribers import import_csv
    report = import_csv(app.db, csv_file.read(), valid_themes=app.config.theme_names, skip_bad=skip_bad,
                        resubscribe=resubscribe)
    for error in report.errors:
        click.echo(error, err=True)
    if report.errors and not skip_bad:
        raise click.ClickException(f"{len(report.errors)} bad row(s); nothing imported "
                                   "(use --skip-bad to import the rest)")
    inactive = f", {len(report.left_inactive)} left unsubscribed" if report.left_inactive else ""
    click.echo(f"imported: {report.added} added, {report.updated} updated, {len(report.errors)} skipped{inactive}")
    if report.left_inactive:
        click.echo(f"not re-activated (unsubscribed or bouncing; --resubscribe to override): "
                   f"{', '.join(report.left_inactive)}", err=True)


# --- digest --------------------------------------------------------------------------------

@cli.group(invoke_without_command=True)
@click.option("--dry-run", is_flag=True,
              help="Build and list the digests that would be sent now (pending ones included); change nothing.")
@click.pass_context
def digest(ctx, dry_run) -> None:
    """Build, preview and send the digests.

    Example: spsbot digest --dry-run    (what `digest build` + `digest send` would send now)
    """
    if ctx.invoked_subcommand is not None:
        if dry_run:
            raise click.UsageError("--dry-run goes after the subcommand here: spsbot digest send --dry-run")
        return
    if not dry_run:
        click.echo(ctx.get_help())
        return
    from bot.digest.builder import build_digests
    from bot.digest.send import send_pending
    from bot.store import scratch_copy
    app = ctx.find_object(AppContext)
    from bot.pipeline import why_nothing
    with scratch_copy(app.db) as scratch:
        built = build_digests(scratch, app.config, progress=app.show_progress)
        rows = send_pending(scratch, app.config, dry_run=True).dry_run
        _echo_would_send(rows, why_nothing(built.skipped, built.empty))


@digest.command("build")
@click.option("--to", "email", help="Only this subscriber.")
@pass_app
def digest_build(app, email) -> None:
    """Build and queue a digest for every due subscriber (and the public archive issue)."""
    from bot.digest.builder import build_digests
    with locked(app, "digest build"):
        result = build_digests(app.db, app.config, email=email, progress=app.show_progress)
    click.echo(f"queued {len(result.built)} digest(s); {result.empty} with nothing new; {result.skipped} not due"
               + ("; public issue built" if result.public else ""))


@digest.command("preview")
@click.option("--to", "email", required=True, help="The subscriber (or any address: all themes, last period).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Folder for the .html and .eml files.")
@pass_app
def digest_preview(app, email, out_dir) -> None:
    """Write the digest an address would get now as .html and .eml (nothing is stored or sent)."""
    from bot.digest.builder import write_preview
    from bot.digest.subscribers import validate_email
    written = write_preview(app.db, app.config, validate_email(email), out_dir)
    click.echo(f"{written['subject']}\n{written['html']}\n{written['eml']}")


@digest.command("send")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; change nothing.")
@click.option("--to", "email", help="Only the pending digest of this subscriber.")
@pass_app
def digest_send(app, dry_run, email) -> None:
    """Send the queued digests over SMTP (the outbox; retried until delivered).

    Exit status: 0 done, 4 some deliveries failed for good (the rest went out), 1 all failed.
    """
    from bot.digest.send import send_pending
    with locked(app, "digest send"):
        result = send_pending(app.db, app.config, email=email, dry_run=dry_run, progress=app.show_progress)
    if dry_run:
        for row in result.dry_run:
            click.echo(f"would send to {row['to']}: {row['subject']} ({row['bytes']} bytes)")
        click.echo(f"{len(result.dry_run)} message(s) pending")
        return
    click.echo(f"sent {result.sent}, failed {result.failed}, deferred {result.deferred}")
    if result.failed:  # a delivery refused for good is an error cron must see, not a quiet count
        from bot.pipeline import delivery_failure_line
        exit_with(EXIT_PARTIAL if result.sent else EXIT_FAILURE, delivery_failure_line(result.failed, result.failures))


@cli.command()
@click.argument("token")
@pass_app
def unsubscribe(app, token) -> None:
    """Apply a signed unsubscribe token (from a digest's link or mailto)."""
    from bot.digest.tokens import apply_unsubscribe
    subscriber = apply_unsubscribe(app.db, token)
    click.echo(f"unsubscribed {subscriber['email']}")


@cli.command("rotate-key")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def rotate_key(app, yes) -> None:
    """Make a new signing key for the links in e-mails: every link already mailed stops working.

    For a lost key (`<database>.key` missing or leaked). Links in the next e-mails use the new key;
    unsubscribe, preferences, feedback and confirmation links in e-mails already sent answer
    "invalid" from now on. Not needed (and refused) when SPSBOT_SECRET signs the links.
    """
    import os
    from bot.store.keyfile import key_path, rotate_key as make_new_key
    if os.environ.get("SPSBOT_SECRET"):
        raise click.ClickException("SPSBOT_SECRET signs the links, not the key file: to change the key, change "
                                   "SPSBOT_SECRET (every link already mailed then stops working)")
    warning = (f"A new signing key in {key_path(app.db)}: every unsubscribe, preferences, feedback and "
               "confirmation link already mailed stops working.")
    if not yes and not click.confirm(warning + " Continue?", default=False):
        raise click.ClickException("nothing changed")
    with locked(app, "rotate-key"):
        path = make_new_key(app.db)
    click.echo(f"made a new signing key {path} (mode 0600; back it up with the database): every link already "
               "mailed stops working; the next e-mails carry working links")


@cli.group()
def archive() -> None:
    """The static web archive of public digest issues."""


@archive.command("build")
@click.argument("out_dir", type=click.Path(file_okay=False))
@pass_app
def archive_build(app, out_dir) -> None:
    """Write one HTML page per public issue, an index.html and an Atom feed to OUT_DIR."""
    from bot.digest.archive import build_archive
    result = build_archive(app.db, app.config, out_dir)
    click.echo(f"{result['issues']} issue(s): {result['index']} and {result['feed']}")


# --- run -----------------------------------------------------------------------------------

EXIT_CODES = {"ok": EXIT_OK, "partial": EXIT_PARTIAL, "nothing_new": EXIT_NOTHING_NEW, "failed": EXIT_FAILURE}


@without_database(lambda params: EMPTY if params["dry_run"] else CREATE)  # a dry run leaves "none yet" too
@cli.command()
@click.option("--no-fetch", is_flag=True, help="Skip fetching (digest and send what is stored).")
@click.option("--no-rank", is_flag=True, help="Skip ranking (use the stored scores).")
@click.option("--dry-run", is_flag=True,
              help="Do everything on a throwaway copy of the database, check the SMTP server (connect, TLS, "
                   "login; nothing sent) and list what would be sent; the database is left exactly as it was.")
@click.option("--deadline", type=click.FloatRange(min=0.001), default=None, metavar="MINUTES",
              help="Stop after this many minutes (default: [run] deadline_minutes, 120).")
@pass_app
def run(app, no_fetch, no_rank, dry_run, deadline) -> None:
    """Fetch, rank, build the digests and send them: the weekly job for cron.

    Exit status: 0 sent something, 3 nothing new to send, 4 a source or some deliveries failed
    but the rest went out, 1 failure (including every delivery refused, or the deadline passed).
    With --dry-run: 0 something would be sent, 3 nothing would, 1 the SMTP server check failed.
    """
    from bot.clock import now_iso
    from bot.pipeline import RunResult

    started, result = now_iso(), RunResult()
    try:
        code, error = _run(app, result, no_fetch=no_fetch, no_rank=no_rank, dry_run=dry_run, deadline=deadline)
    except UserError as e:
        code, error = e.exit_code, str(e)
        _log_run(started, dry_run, result, code, error)
        raise
    _log_run(started, dry_run, result, code, error)
    exit_with(code, error)


def _run(app, result, *, no_fetch, no_rank, dry_run, deadline) -> tuple[int, str | None]:
    """Run the pipeline into ``result``; (exit code, error line or None)."""
    from bot.digest.send import SendError, SmtpSettings, check_server
    from bot.pipeline import run_weekly, why_nothing
    from bot.store import recorded_run
    from bot.store.keyfile import check_signing_secret

    # What would stop the send stage stops the run before an hour of fetching and ranking.
    check_signing_secret(app.db)
    SmtpSettings.from_config(app.config)
    options = dict(fetch=not no_fetch, rank=not no_rank, progress=app.show_progress, deadline_minutes=deadline)
    if dry_run:  # nothing is written, so no lock and no `runs` row
        run_weekly(app.db, app.config, dry_run=True, result=result, **options)
        if result.status == "failed":
            return EXIT_FAILURE, result.summary_error
        _echo_would_send(result.dry_run, why_nothing(result.not_due, result.empty))
        try:
            click.echo(check_server(app.config) + ": ok (nothing sent)")
        except SendError as e:
            result.stages.append("smtp check failed")
            return EXIT_FAILURE, f"the real run would fail: {e}"
        result.stages.append("smtp check ok")
        return EXIT_CODES["ok" if result.dry_run else "nothing_new"], None
    with locked(app, "run"), recorded_run(app.db, "run") as record:
        run_weekly(app.db, app.config, result=result, **options)
        record.counts.update(result.counts())
        record.status, record.error = result.status, result.summary_error
    return EXIT_CODES[result.status], result.summary_error if result.failed else None


def _log_run(started: str, dry_run: bool, result, code: int, error: str | None) -> None:
    """The run's one closing log line: when it started, each stage's outcome, the exit code."""
    stages = "; ".join(result.stages) or "no stage ran"
    # a warning when the run failed: the error itself was already logged once, as an ERROR line
    log.log(logging.INFO if code in (EXIT_OK, EXIT_NOTHING_NEW) else logging.WARNING, "run%s started %s, exit %d: %s%s",
            " --dry-run" if dry_run else "", started, code, stages, f" ({error})" if error else "")


def _echo_would_send(rows: list[dict], why: str = "") -> None:
    for row in rows:
        click.echo(f"would send to {row['to']}: {row['subject']} ({row['bytes']} bytes)")
    why = f" ({why})" if why and not rows else ""
    click.echo(f"dry run: {len(rows)} message(s) would be sent{why}; nothing was stored or sent")
