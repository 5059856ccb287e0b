"""Ranking commands: ``spsbot rank``, ``spsbot score FILE``, ``spsbot label``.

Thin: they parse options, call ``bot.ranking`` (``stage``, ``records``, ``scorer``), print. Heavy imports
(numpy, scikit-learn, the model) happen inside the commands, never at ``import bot.cli``.
"""

from __future__ import annotations

import json
import sys

import click

from bot.cli.base import cli, locked, pass_app

OUTPUT_FIELDS = ("id", "relevance", "relevant", "themes", "labels", "why", "evidence")


@cli.command()
@click.option("--force", is_flag=True, help="Re-score every item, changed or not.")
@pass_app
def rank(app, force: bool) -> None:
    """Score new and changed items for relevance and themes (embeddings are cached)."""
    from bot.ranking.stage import rank_items
    from bot.status import ranker_seed_state
    with locked(app, "rank"):
        counts = rank_items(app.db, app.config, progress=app.show_progress, force=force)
    click.echo(f"scored {counts['scored']} items ({counts['relevant']} relevant), "
               f"{counts['unchanged']} unchanged, {counts['embedded']} texts embedded")
    state = ranker_seed_state(app.db) or {}
    if state.get("relevance_quality"):  # a topic with no human-labelled seed: what its relevance is expected to reach
        click.echo(f"expected quality: {state['relevance_quality']}")
    if state.get("mesh_note"):
        click.echo(f"check: {state['mesh_note']}")


@cli.command()
@click.argument("file", type=click.File("rb"))
@pass_app
def score(app, file) -> None:
    """Score a file of records (JSON Lines, PubMed XML or ClinicalTrials.gov JSON) to JSON Lines.

    Example: spsbot score papers.jsonl > scores.jsonl   (FILE "-" reads stdin)

    Input lines: {"id", "title", "text", optional "kind", "pub_types", "mesh", "keywords"}.
    Output, one line per record in input order: {"id", "relevance", "relevant", "themes",
    "labels", "why", "evidence"}. The database is never touched.
    """
    from bot.ranking.records import read_records
    records = read_records(file.read(), getattr(file, "name", "input"))
    if not records:
        return
    from bot.ranking.embedder import profile_embedder
    from bot.ranking.scorer import Ranker
    ranker = Ranker(app.config, profile_embedder(app.config))
    out = sys.stdout
    for result in ranker.score(records, progress=app.show_progress):
        out.write(json.dumps({k: result[k] for k in OUTPUT_FIELDS}, ensure_ascii=False) + "\n")
    out.flush()


@cli.command()
@click.argument("item", required=False)
@click.argument("judgement", required=False, type=click.Choice(["relevant", "irrelevant"]))
@click.option("--theme", help="The judgement is about this theme (present / absent), not relevance.")
@click.option("--remove", is_flag=True, help="Forget the judgement on ITEM (and --theme).")
@click.option("--file", "labels_file", type=click.File("r"),
              help="Load judgements from CSV or JSON Lines with item_id, label[, theme].")
@click.option("--review", is_flag=True,
              help="Ask about the items whose label would most improve the ranker, one at a time.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True,
              help="With --review: at most this many.")
@pass_app
def label(app, item, judgement, theme, remove, labels_file, review, limit) -> None:
    """Record a curator's judgement; the ranker learns from it at the next rank.

    A judged item always gets the curator's label; its neighbours move with it.

    \b
    Example: spsbot label pmid:12345 relevant --theme immunomodulation
             spsbot label --review --limit 25    (answer y / n, s to skip, q to stop)
    """
    from bot.ranking.records import read_labels
    from bot.ranking.stage import store_judgements
    if review:
        _review(app, limit)
        return
    if labels_file is not None:
        rows = read_labels(labels_file.read(), labels_file.name)
    elif item and (judgement or remove):
        rows = [(0, item, judgement or "relevant", theme)]
    else:
        raise click.ClickException("give ITEM and relevant|irrelevant (or --remove), or --file")
    stored = store_judgements(app.db, app.config, rows, remove=remove)
    click.echo(f"{'removed' if remove else 'stored'} {stored} judgement(s); run `spsbot rank` to apply")


REVIEW_ANSWERS = {"y": True, "n": False, "s": None}


def _review(app, limit: int) -> None:
    """``label --review``: uncertainty sampling in the terminal; every answer is stored at once."""
    from bot.ranking.stage import review_queue
    from bot.store.ranking import save_feedback
    from bot.store.subscribers import vote_counts
    db, topic = app.db, app.config.topic.name
    votes = vote_counts(db)  # subscribers' clicks in their e-mails: shown beside each item
    review = review_queue(db, app.config)
    if review is None:
        raise click.ClickException("nothing to review: run `spsbot fetch` and `spsbot rank` first "
                                   "(every scored item is judged already, or none is scored)")
    queue, by_id = review
    click.echo(f"{len(queue)} unjudged items; asking about those the ranker is least sure of "
               f"(cut {queue.threshold:.2f}). y = about {topic}, n = not, s = skip, q = stop.")
    stored = 0
    for number in range(1, limit + 1):
        item_id = queue.next()
        if item_id is None:
            break
        _show(number, limit, by_id[item_id], queue.score_of(item_id), votes.get(item_id))
        try:
            answer = click.prompt(f"About {topic}? [y/n/s/q]", type=click.Choice(["y", "n", "s", "q"]),
                                  show_choices=False)
        except click.Abort:  # end of input (Ctrl-D): what was answered is kept
            click.echo()
            break
        if answer == "q":
            break
        if REVIEW_ANSWERS[answer] is not None:
            save_feedback(db, item_id, "relevant" if REVIEW_ANSWERS[answer] else "irrelevant", note="label --review")
            stored += 1
        queue.answer(item_id, REVIEW_ANSWERS[answer])
    click.echo(f"stored {stored} judgement(s); run `spsbot rank` to apply them")


def _show(number: int, limit: int, record: dict, score: float, votes: tuple[int, int] | None = None) -> None:
    from bot.digest.entries import display_date
    text = " ".join((record.get("text") or "").split())
    click.echo(f"\n[{number}/{limit}] {record['id']}  relevance {score:.2f}")
    if votes:
        click.echo(f"  subscribers' votes: {votes[0]} relevant, {votes[1]} not relevant")
    click.echo(f"  {record.get('title') or '(no title)'}")
    meta = " · ".join(x for x in (record.get("journal"), display_date(record.get("pub_date")),
                                  ", ".join(record.get("pub_types") or [])) if x)
    if meta:
        click.echo(f"  {meta}")
    if text:
        click.echo(f"  {text[:600]}{'…' if len(text) > 600 else ''}")
    if record.get("url"):
        click.echo(f"  {record['url']}")
