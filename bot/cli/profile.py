"""``spsbot init TOPIC``: a starter profile for another disease."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from bot.cli.base import cli


def interactive() -> bool:
    """Whether someone is at a terminal to answer a question."""
    return sys.stdin.isatty()


@cli.command()
@click.argument("topic")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write it (default: TOPIC as a file name in this folder, e.g. myasthenia-gravis.toml).")
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
@click.option("--acronym", "acronyms", multiple=True,
              help="The abbreviation the literature uses for it, e.g. MG (repeat for several). Asked for when "
                   "not given and the terminal is interactive; never guessed from the initials.")
def init(topic: str, output: str | None, force: bool, acronyms: tuple[str, ...]) -> None:
    """Write a starter profile for another disease (query, condition, themes to fill in).

    Example: spsbot init "Myasthenia gravis" --acronym MG
    """
    from bot.config import ConfigError, load_config
    from bot.starter import split_name, starter_profile, what_edits_change
    if not topic.strip():
        raise click.ClickException("give the disease's name, e.g. spsbot init \"Myasthenia gravis\"")
    name, given = split_name(topic)
    path = Path(output or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".toml")
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; use --force to overwrite it")
    chosen = list(acronyms) or given
    if not chosen and interactive():  # ask; with no one to ask, declare none (a TODO says so)
        answer = click.prompt(f"The abbreviation papers use for {name}, e.g. MG (comma-separated; empty for none)",
                              default="", show_default=False)
        chosen = [a.strip() for a in answer.split(",") if a.strip()]
    path.write_text(starter_profile(topic, chosen), encoding="utf-8")
    try:
        config = load_config(path, env={})
    except ConfigError as e:  # a name that breaks the file (it should not happen): say so, keep nothing
        path.unlink()
        raise click.ClickException(f"could not write a valid profile for {topic!r}: {e}") from None
    acronym_note = (f"acronyms {', '.join(config.topic.acronyms)}" if config.topic.acronyms
                    else "no acronym (give one with --acronym, or in acronyms = [...])")
    click.echo(f"wrote {path}: topic {config.topic.name!r}, {acronym_note}, themes {', '.join(config.theme_names)}")
    from bot.ranking.embedder import profile_embedder
    from bot.ranking.scorer import expected_quality
    click.echo(f"without labels: {expected_quality(profile_embedder(config).passage_space)}")
    click.echo("what your edits change:")
    for line in what_edits_change():
        click.echo(f"  {line}")
    click.echo("next: fill in what says TODO, then")
    click.echo(f"  export SPSBOT_CONFIG={path.resolve()}")
    click.echo("  spsbot fetch && spsbot rank && spsbot label --review")
