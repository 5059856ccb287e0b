"""``spsbot init TOPIC``: a starter profile for another disease."""

from __future__ import annotations

import re
from pathlib import Path

import click

from bot.cli.base import cli


@cli.command()
@click.argument("topic")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write it (default: TOPIC as a file name in this folder, e.g. myasthenia-gravis.toml).")
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
def init(topic: str, output: str | None, force: bool) -> None:
    """Write a starter profile for another disease (query, condition, themes to fill in).

    Example: spsbot init "Myasthenia gravis"
    """
    from bot.config import ConfigError, load_config
    from bot.starter import starter_profile
    if not topic.strip():
        raise click.ClickException("give the disease's name, e.g. spsbot init \"Myasthenia gravis\"")
    path = Path(output or re.sub(r"[^a-z0-9]+", "-", topic.lower()).strip("-") + ".toml")
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; use --force to overwrite it")
    path.write_text(starter_profile(topic), encoding="utf-8")
    try:
        config = load_config(path, env={})
    except ConfigError as e:  # a name that breaks the file (it should not happen): say so, keep nothing
        path.unlink()
        raise click.ClickException(f"could not write a valid profile for {topic!r}: {e}") from None
    click.echo(f"wrote {path}: topic {config.topic.name!r}, themes {', '.join(config.theme_names)}")
    click.echo("next: fill in what says TODO, then")
    click.echo(f"  export SPSBOT_CONFIG={path.resolve()}")
    click.echo("  spsbot fetch && spsbot rank && spsbot label --review")
