"""Commands about tracked trials: ``trials`` and ``changes``."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from bot.cli.base import cli, pass_app
from bot.dates import parse_day_option, parse_timestamp
from bot.store import now_iso


def _short(text: str | None, width: int) -> str:
    text = text or ""
    return text if len(text) <= width else text[:width - 1] + "…"


@cli.command("trials")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per trial (JSON Lines).")
@pass_app
def trials_command(app, as_json: bool) -> None:
    """List tracked trials with their status and last change."""
    from bot.store.trials import tracked_trials
    app.check_config()
    rows = tracked_trials(app.db)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        click.echo("No trials stored yet: run `spsbot fetch` first.")
        return
    click.echo(f"{'NCT':<12} {'STATUS':<24} {'LAST CHANGE':<46} TITLE")
    for row in rows:
        if row["last_change_at"]:
            change = (f"{row['last_change_at'][:10]} {row['last_change_field']}: "
                      f"{row['last_change_old'] or '—'} → {row['last_change_new'] or '—'}")
        else:
            change = f"none (first seen {(row['first_seen'] or '')[:10]})"
        click.echo(f"{row['nct_id']:<12} {_short(row['status'] or '?', 24):<24} {_short(change, 46):<46} "
                   f"{_short(row['title'], 60)}")


@cli.command("changes")
@click.option("--since", help="Changes detected on or after DATE (YYYY[-MM[-DD]] or ISO). Default: 7 days ago.")
@click.option("--until", help="Changes detected before this date (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change event (JSON Lines).")
@pass_app
def changes_command(app, since: str | None, until: str | None, as_json: bool) -> None:
    """List trial change events (status, enrollment, dates, results…) since a date.

    Example: spsbot changes --since 2026-11-01 --json
    """
    from bot.store.trials import trial_changes_since
    app.check_config()
    # The store's clock (SPSBOT_NOW in tests), so "the last 7 days" matches what fetch recorded.
    since = parse_day_option(since, "--since") or (parse_timestamp(now_iso()) - timedelta(days=7)).date().isoformat()
    until = parse_day_option(until, "--until")
    rows = trial_changes_since(app.db, since, until)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"No trial changes since {since}.")
        return
    for row in rows:
        click.echo(f"{row['detected_at'][:10]} {row['nct_id']} {row['field']}: {row['old'] or '—'} → "
                   f"{row['new'] or '—'}  ({_short(row['title'], 70)})")
