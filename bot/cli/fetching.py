"""Commands that fetch from the sources: ``fetch`` and ``demo``."""

from __future__ import annotations

from pathlib import Path

import click

from bot.cli.base import EXIT_FAILURE, EXIT_PARTIAL, CREATE, cli, exit_with, locked, pass_app, without_database
from bot.errors import one_line
from bot.fetch.registry import SOURCES


def _counts_line(name: str, counts: dict) -> str:
    shown = ", ".join(f"{key} {counts[key]}" for key in ("fetched", "new", "updated", "unchanged", "errors")
                      if key in counts)
    extra = f" ({counts['requests']} requests)" if "requests" in counts else ""
    return f"{name}: {shown}{extra}"


@without_database(CREATE)  # the first fetch on a new install is the backfill
@cli.command()
@click.option("--source", "sources", multiple=True, type=click.Choice(sorted(SOURCES)),
              help="Only this source (repeatable); default: every source the config enables.")
@click.option("--full", is_flag=True, help="Ignore the incremental state: re-fetch from the backfill start.")
@pass_app
def fetch(app, sources: tuple[str, ...], full: bool) -> None:
    """Fetch new records from PubMed, ClinicalTrials.gov and feeds into the database.

    Exit status: 0 all sources worked, 4 some failed (partial), 1 all failed.

    \b
    Example:
      SPSBOT_EUTILS_URL=http://127.0.0.1:8080/entrez/eutils spsbot fetch --source pubmed
    """
    from bot.fetch import fetch_all

    with locked(app, "fetch"):
        result = fetch_all(app.db, app.config, list(sources) or None, full=full, progress=app.show_progress)
    for name, counts in result.counts.items():
        click.echo(_counts_line(name, counts))
    for name, error in result.errors.items():
        click.echo(f"{name}: FAILED: {error}", err=True)
    if result.errors:
        exit_with(EXIT_PARTIAL if result.counts else EXIT_FAILURE)


@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="spsbot-demo", show_default=True,
              help="Folder the demo writes to.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="Demo database (default: spsbot-demo.db inside --out; never your real database).")
@pass_app
def demo(app, out_dir: str, db_path: str | None) -> None:
    """Run the pipeline on bundled recorded data through a local server (no network needed).

    With --config / SPSBOT_CONFIG, the bundled (SPS) records are ranked and digested under your profile.
    """
    from bot.demo import run_demo

    db_path = db_path or str(Path(out_dir) / "spsbot-demo.db")
    profile = app.config if app.config_path else None
    if profile is None:
        click.echo("profile: the bundled SPS profile (give --config or SPSBOT_CONFIG to rank the records under yours)")
    else:
        click.echo(f"profile: {profile.topic.name} ({app.config_path}); the demo's records are SPS papers and trials, "
                   f"ranked and digested under your profile")
    try:
        summary = run_demo(db_path, out_dir, progress=app.show_progress, profile=profile)
    except Exception as e:  # noqa: BLE001 - one line for the user; details with -v
        raise click.ClickException(f"demo failed: {one_line(e)}") from None
    click.echo(_counts_line("pubmed", summary["pubmed"]))
    trials = summary["trials"]
    click.echo(_counts_line("clinicaltrials", trials["first"]))
    for change in trials["changes"]:
        click.echo(f"  trial change: {change['nct_id']} {change['field']}: "
                   f"{change['old'] or '—'} → {change['new'] or '—'}")
    stored = summary["stored"]
    trials_stored = stored["items"] - stored["papers"]
    click.echo(f"stored {stored['items']} items ({stored['papers']} papers, {trials_stored} trials)")
    ranked = summary["rank"]
    click.echo(f"ranked {ranked['scored']} items: {ranked['relevant']} relevant to {summary['profile']['topic']}")
    for theme, items in summary["top"].items():
        click.echo(f"\n{theme}:")
        for item in items:
            click.echo(f"  {item['score']:.2f}  {item['id']}  {item['title'][:80]}")
            if item["sentence"]:
                click.echo(f"        “{item['sentence'][:150]}”")
        if not items:
            click.echo("  (nothing in the demo data)")
    digest = summary["digest"]
    click.echo(f"\ndigest: {digest['subject']} ({digest['items']} items)")
    click.echo(f"  HTML:  {Path(digest['html']).resolve()}")
    click.echo(f"  text:  {Path(digest['text']).resolve()}")
    click.echo(f"  .eml:  {Path(digest['eml']).resolve()}")
    plain = summary["digest_plain"]
    click.echo(f"  in plain words (the style a patient can choose): {Path(plain['html']).resolve()}, "
               f"{Path(plain['text']).name}")
    click.echo(f"database: {Path(db_path).resolve()}")
    click.echo(f"demo output written to: {Path(out_dir).resolve()}")
