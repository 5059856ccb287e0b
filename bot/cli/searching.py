"""Commands for asking the store and watching the pipeline: ``search``, ``status``, ``export``,
``datasette-metadata``."""

from __future__ import annotations

import csv
import json
import shutil
import sys

import click

from bot.cli.base import (CREATE, EMPTY, EXIT_CONFIG_INVALID, EXIT_DELIVERIES_FAILING, EXIT_FAILURE, EXIT_OK,
                          EXIT_RUN_FAILED, EXIT_SOURCE_FAILED, EXIT_STALE, REFUSE, cli, exit_with, log, pass_app,
                          without_database)

# `spsbot status`: problem (bot.status.PROBLEMS, most urgent first) -> exit code. A database that
# fails PRAGMA quick_check is 1, like any failure: nothing should run on it.
STATUS_EXIT_CODES = {"integrity": EXIT_FAILURE, "config_invalid": EXIT_CONFIG_INVALID,
                     "run_failed": EXIT_RUN_FAILED, "deliveries_failing": EXIT_DELIVERIES_FAILING,
                     "stale": EXIT_STALE, "source_failed": EXIT_SOURCE_FAILED}

SEARCH_CSV_COLUMNS = ("rank", "score", "id", "kind", "year", "title", "labels", "relevance", "status",
                      "origin", "url")


def filter_options(command):
    """The filters ``search`` and ``export`` share."""
    options = [
        click.option("--kind", type=click.Choice(["paper", "trial"]), help="Only papers or only trials."),
        click.option("--theme", "themes", multiple=True, metavar="THEME",
                     help="Only items labelled with this theme (repeat for any of several)."),
        click.option("--since", metavar="DATE", help="Published on or after DATE (YYYY, YYYY-MM or YYYY-MM-DD)."),
        click.option("--until", metavar="DATE", help="Published on or before DATE."),
        click.option("--pub-type", "pub_types", multiple=True, metavar="TYPE",
                     help='Publication type contains TYPE, e.g. "case report", "review" (repeatable).'),
        click.option("--status", "statuses", multiple=True, metavar="STATUS",
                     help='Trials whose overall status is STATUS, e.g. recruiting, "not yet recruiting".'),
        click.option("--relevant", "relevant_only", is_flag=True, help="Only items the ranker judged relevant."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_filters(app, kind, themes, since, until, pub_types, statuses, relevant_only):
    """Validated Filters from the command line (a mistake is one line, exit 1)."""
    from bot.dates import parse_day_option
    from bot.search.hybrid import Filters
    if statuses and kind == "paper":
        raise click.ClickException("--status applies to trials; it cannot be combined with --kind paper")
    if themes:
        known = app.config.theme_names
        unknown = [t for t in themes if t not in known]
        if unknown:
            raise click.ClickException(f"unknown theme {unknown[0]!r} (themes: {', '.join(known)})")
    since_iso, until_iso = parse_day_option(since, "--since"), parse_day_option(until, "--until", end=True)
    if since_iso and until_iso and since_iso > until_iso:
        raise click.ClickException(f"--since {since} is after --until {until}")
    return Filters(kind=kind or ("trial" if statuses else None), themes=list(themes), since=since_iso,
                   until=until_iso, pub_types=list(pub_types), statuses=list(statuses),
                   relevant_only=relevant_only)


def _clip(text: str, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def format_table(hits: list[dict], width: int) -> list[str]:
    """A terminal table: rank, score, year, kind, title, labels, link (title takes what is left)."""
    label_width = 24
    link_width = min(48, max(len(h["url"] or h["id"]) for h in hits))
    fixed = 4 + 8 + 5 + 6 + label_width + link_width + 6
    title_width = max(20, width - fixed)
    header = (f"{'#':>3} {'SCORE':>7} {'YEAR':>4} {'KIND':<5} {'TITLE':<{title_width}} "
              f"{'LABELS':<{label_width}} LINK")
    lines = [header]
    for rank, hit in enumerate(hits, start=1):
        score = f"{hit['score']:.4f}" if hit.get("score") is not None else "-"
        labels = ", ".join(hit.get("labels") or []) or ("(new)" if hit.get("origin") == "live" else "")
        lines.append(f"{rank:>3} {score:>7} {str(hit.get('year') or ''):>4} {hit.get('kind') or '':<5} "
                     f"{_clip(hit.get('title'), title_width):<{title_width}} "
                     f"{_clip(labels, label_width):<{label_width}} {_link(hit, link_width)}")
    return lines


def _link(hit: dict, width: int) -> str:
    """The URL in full (a terminal makes it clickable), else the id."""
    url = hit.get("url") or ""
    return url if url.startswith(("http://", "https://")) else _clip(url or hit["id"], width)


def _print_csv(hits: list[dict]) -> None:
    from bot.export import csv_cell  # cleaned text, spreadsheet formulas neutralised (as `export`)
    writer = csv.DictWriter(sys.stdout, fieldnames=SEARCH_CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rank, hit in enumerate(hits, start=1):
        row = {**hit, "rank": rank}
        writer.writerow({key: csv_cell(row.get(key)) for key in SEARCH_CSV_COLUMNS})


# --live --save stores what the sources returned, like `fetch`; --live alone needs no store
@without_database(lambda params: CREATE if params["save"] else EMPTY if params["live"] else REFUSE)
@cli.command()
@click.argument("query", nargs=-1, required=True)
@filter_options
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="How many results.")
@click.option("--json", "as_json", is_flag=True, help="Print results as a JSON array (for scripts).")
@click.option("--csv", "as_csv", is_flag=True, help="Print results as CSV (for scripts and spreadsheets).")
@click.option("--no-semantic", is_flag=True, help="Words only (full-text BM25); never loads the embedding model.")
@click.option("--live", is_flag=True, help="Also ask PubMed and ClinicalTrials.gov now, merged with the store.")
@click.option("--save", is_flag=True, help="With --live: store what the live sources returned.")
@click.option("--anywhere", is_flag=True, help="With --live: do not restrict the live query to the topic.")
@click.option("--verbose", "explain", is_flag=True, help="Say how the search was done (vectors, live counts).")
@pass_app
def search(app, query, kind, themes, since, until, pub_types, statuses, relevant_only, limit, as_json, as_csv,
           no_semantic, live, save, anywhere, explain):
    """Search stored papers and trials by words and meaning.

    Hybrid: full-text (BM25) fused with embedding similarity. Quoted phrases, -exclusions, word*
    prefixes and OR work; quote the whole query for the shell. --live also asks PubMed and
    ClinicalTrials.gov now (restricted to the topic unless --anywhere).

    \b
    Example:
        spsbot search rituximab --since 2023
        spsbot search '"intrathecal baclofen" -review' --kind paper
        spsbot search 'CAR-T' --kind trial --status recruiting --json
        spsbot search efgartigimod --live --save
    """
    from bot.search.hybrid import load_default_embedder, search as run_search
    if as_json and as_csv:
        raise click.ClickException("choose one of --json and --csv")
    if save and not live:
        raise click.ClickException("--save stores live results: use it with --live")
    text = " ".join(query)
    filters = build_filters(app, kind, themes, since, until, pub_types, statuses, relevant_only)
    result = run_search(app.db, text, filters, limit=limit, semantic=not no_semantic,
                        embedder_loader=lambda: load_default_embedder(app.config))
    if live:
        result = _with_live(app, result, text, filters, limit, anywhere, save)
    for note in result.notes:
        log.debug("search: %s", note)
        if explain:
            click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(json.dumps(result.hits, indent=2, ensure_ascii=False))
    elif as_csv:
        _print_csv(result.hits)
    elif not result.hits:
        click.echo(f"No results for {text!r}" + ("" if filters.is_empty() else " with these filters") + ".")
    else:
        width = shutil.get_terminal_size((140, 24)).columns
        for line in format_table(result.hits, width):
            click.echo(line)


def _with_live(app, result, text, filters, limit, anywhere, save):
    from bot.search.live import live_records, merge_live, save_live
    live = live_records(app.config, text, filters, limit=limit, within_topic=not anywhere)
    for source, error in live.errors.items():
        click.echo(f"warning: live {source} failed: {error}", err=True)
    merged = merge_live(app.db, result, live, filters, limit)
    if save:
        counts = save_live(app.db, live)
        click.echo(f"saved live results: {counts['new']} new, {counts['updated']} updated, "
                   f"{counts['unchanged']} unchanged", err=True)
    return merged


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (for monitoring).")
@pass_app
def status(app, as_json):
    """Show pipeline health: last runs, store, outbox, subscribers.

    Exit status (the most urgent problem wins): 1 no database, or it fails PRAGMA quick_check, 8 the
    configuration is invalid, 6 the last `spsbot run` failed, 7 deliveries are failing, 5 a source
    has not succeeded for more than twice the digest period (or never has), 9 a source's last
    attempt failed, 0 healthy. Each problem is a WARNING line ending with what to do next.
    """
    from bot.config import ConfigError
    from bot.status import collect_status, format_status, status_json
    from bot.digest.send import SendError, SmtpSettings
    from bot.store.keyfile import KeyFileError, SecretError, check_signing_secret
    config, config_error = None, None
    try:
        config = app.config
        # a placeholder secret or password, a lost key: the next run would fail at once
        check_signing_secret(app.db)
        SmtpSettings.from_config(config)
    except (ConfigError, SecretError, KeyFileError, SendError) as e:  # never hides the pipeline's state
        config_error = str(e)
    report = collect_status(app.db, config, config_error=config_error)
    report["exit_code"] = STATUS_EXIT_CODES[report["problems"][0]] if report["problems"] else EXIT_OK
    if as_json:
        click.echo(status_json(report))
    else:
        for line in format_status(report):
            click.echo(line)
    exit_with(report["exit_code"])


@cli.command()
@filter_options
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "ris"]), default=None,
              help="Output format (default: from the -o file's extension, else csv).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to FILE instead of standard output.")
@click.option("-n", "--limit", type=click.IntRange(1), default=None, help="At most this many items.")
@pass_app
def export(app, kind, themes, since, until, pub_types, statuses, relevant_only, fmt, output, limit):
    """Export items with scores as CSV, JSON Lines or RIS.

    RIS is for reference managers (Zotero, EndNote, Mendeley). Same filters as search.

    \b
    Example:
        spsbot export --relevant --since 2023 -o sps-2023.ris
        spsbot export --kind trial --format jsonl
    """
    from bot.export import write_export, export_records
    app.check_config()
    filters = build_filters(app, kind, themes, since, until, pub_types, statuses, relevant_only)
    if fmt is None:
        suffix = (output or "").rsplit(".", 1)[-1].lower() if output and "." in output else ""
        fmt = {"ris": "ris", "jsonl": "jsonl", "ndjson": "jsonl", "json": "jsonl"}.get(suffix, "csv")
    records = export_records(app.db, filters, limit)
    if output:
        # newline="" for CSV (the csv module writes its own \r\n), plain text otherwise
        with open(output, "w", encoding="utf-8", newline="" if fmt == "csv" else None) as out:
            count = write_export(records, out, fmt)
        click.echo(f"wrote {count} items to {output} ({fmt})", err=True)
    else:
        count = write_export(records, sys.stdout, fmt)
        if not count:
            click.echo("No items match these filters.", err=True)


@cli.command("datasette-metadata")
@pass_app
def datasette_metadata(app) -> None:
    """Print Datasette metadata (JSON) that keeps subscribers' data private.

    Subscribers, their digests, the outbox, runs and feedback are hidden and denied, and custom
    SQL is off; the literature (items, trials, scores, views) stays browsable.

    \b
    Example:
        spsbot datasette-metadata > metadata.json
        datasette ~/.local/share/spsbot/spsbot.db --metadata metadata.json
    """
    from bot.datasette import metadata
    click.echo(json.dumps(metadata(app.db_path), indent=2))
