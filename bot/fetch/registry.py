"""One entry per source: everything the rest of spsbot needs to know about it.

Adding a source means: its HTTP + parsing in ``bot/sources/<name>.py``, its fetch stage in
``bot/fetch/<name>.py``, its ``[sources.<name>]`` settings (if any) in
``bot.config.SOURCE_SETTINGS``, an emulator in ``bot/replay/`` for its tests, and one ``Source``
here. ``spsbot fetch --source``, ``fetch_all``, ``spsbot status`` and the demo read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bot.fetch import clinicaltrials, feeds, pubmed
from bot.fetch.results import SourceResult
from bot.replay.ctgov import demo_responder as ctgov_demo_responder
from bot.replay.eutils import eutils_demo_responder


@dataclass(frozen=True)
class Source:
    name: str                                    # runs.source, `spsbot fetch --source NAME`
    fetch: Callable[..., SourceResult]           # run(db, config, *, full, progress, **options)
    enabled: Callable[[object], bool]            # does this config ask for the source?
    item_tag: str                                # the tag its items carry in items.sources ("feed:<name>" → "feed")
    settings: str | None = None                  # its config section (bot.config.SOURCE_SETTINGS), if any
    demo_responder: Callable | None = None       # (version) -> a bot.replay responder serving its bundled data


def _pubmed_enabled(config) -> bool:
    return bool(config.pubmed.get("enabled", True) and config.topic.pubmed_query)


def _ctgov_enabled(config) -> bool:
    topic = config.topic
    return bool(config.clinicaltrials.get("enabled", True) and (topic.ctgov_condition or topic.ctgov_terms))


def _feeds_enabled(config) -> bool:
    return bool(config.topic.feeds)  # configured by [topic] feeds, no section of its own


SOURCES: dict[str, Source] = {source.name: source for source in (
    Source("pubmed", pubmed.run, _pubmed_enabled, item_tag="pubmed", settings="sources.pubmed",
           demo_responder=eutils_demo_responder),
    Source("clinicaltrials", clinicaltrials.run, _ctgov_enabled, item_tag="ctgov",
           settings="sources.clinicaltrials", demo_responder=ctgov_demo_responder),
    Source("feeds", feeds.run, _feeds_enabled, item_tag="feed"),
)}


def enabled_sources(config) -> list[str]:
    """The names of the sources this config asks for, in fetch order."""
    return [name for name, source in SOURCES.items() if source.enabled(config)]
