"""Commands for the web front and the feedback it collects: ``serve``, ``feedback list``."""

from __future__ import annotations

import json
import signal

import click

from bot.cli.base import CREATE, cli, log, pass_app, without_database


def _serve(app, host: str, port: int) -> None:
    from bot.web.app import create_app
    from bot.web.mailer import SignupMailer
    from bot.web.server import make_server, stop_server

    from bot.digest.send import SmtpSettings

    config = app.config
    app.db  # noqa: B018 - opens the database (migrations, a clear error for a bad file) before listening
    # it sends the sign-up e-mails: settings `run` refuses (the env.example password, a password in
    # the URL) are refused before listening, not found by the mailer while visitors are told "check
    # your inbox"
    SmtpSettings.from_config(config)
    base = (config.web.get("base_url") or "").rstrip("/")
    if not base:
        base = f"http://{host}:{port}"
        log.warning("serve: [web] base_url is not set; links in e-mails will point to %s", base)
    mailer = SignupMailer(app.db_path, config, base)
    web_app = create_app(config, app.db_path, base_url=base, wake_mailer=mailer.wake)
    server = make_server(web_app, host, port, config.web)
    signal.signal(signal.SIGTERM, _interrupt)  # systemd's stop: the same clean exit as Ctrl-C
    mailer.start()
    click.echo(f"spsbot serve: listening on http://{host}:{server.effective_port} (links in e-mails: {base}); "
               "Ctrl-C stops", err=True)
    if config.web.get("semantic_search", True):
        _warm_search_model(web_app)
    try:
        server.run()  # returns on KeyboardInterrupt/SystemExit, after stopping the workers
    finally:
        stop_server(server)
        mailer.stop()
        click.echo("spsbot serve: stopped", err=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _warm_search_model(web_app) -> None:
    """Load the search model in the background, so the first visitor's search is not the one
    that waits for it."""
    import threading
    state = web_app.extensions["spsbot"]

    def warm():
        try:
            state.search_embedder().encode(["warm up"])
        except Exception as e:  # noqa: BLE001 - search then falls back to words on first use
            log.warning("serve: the search model could not be loaded (%s); search will retry", e)
    threading.Thread(target=warm, name="spsbot-warm-search", daemon=True).start()


@without_database(CREATE)  # a new install's web front takes sign-ups before the first weekly run
@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep 127.0.0.1 behind "
                                                                      "a reverse proxy).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@pass_app
def serve(app, host, port) -> None:
    """Serve the web front: sign-up, preferences, unsubscribe, feedback, archive, search.

    Run it behind a reverse proxy that terminates TLS; set [web] base_url to its public URL.

    Example: spsbot serve --port 8080
    """
    _serve(app, host, port)


@without_database(CREATE)
@cli.command("serve-unsubscribe")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@pass_app
def serve_unsubscribe(app, host, port) -> None:
    """Alias of `spsbot serve` (the whole web front; /unsubscribe included)."""
    _serve(app, host, port)


@cli.group()
def feedback() -> None:
    """Curator labels and subscribers' votes from the digests' feedback links."""


@feedback.command("list")
@click.option("--since", metavar="DATE", help="Only feedback given on or after DATE (YYYY-MM-DD, YYYY-MM or YYYY).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_app
def feedback_list(app, since, as_json) -> None:
    """List items with curator labels or subscriber votes (most recent first).

    Curator labels (``spsbot label``, or a curator's click in a digest) decide an item; votes
    from other subscribers count at [ranking] vote_weight.
    """
    from bot.dates import parse_day_option
    from bot.store.subscribers import feedback_overview
    rows = feedback_overview(app.db, parse_day_option(since, "--since"))
    for row in rows:
        curator = ", ".join(f"{c['label']}{' (' + c['theme'] + ')' if c['theme'] else ''}" for c in row["curator"])
        if as_json:
            click.echo(json.dumps({"item_id": row["item_id"], "title": row["title"], "kind": row["kind"],
                                   "curator": row["curator"], "votes_relevant": row["votes_relevant"],
                                   "votes_irrelevant": row["votes_irrelevant"], "last_at": row["last_at"]},
                                  ensure_ascii=False))
        else:
            title = " ".join((row["title"] or "(not in the database)").split())
            click.echo(f"{row['item_id']}\tcurator: {curator or '-'}\tvotes: +{row['votes_relevant']} "
                       f"-{row['votes_irrelevant']}\t{title[:80]}")
    if not rows and not as_json:
        click.echo("no feedback yet", err=True)
