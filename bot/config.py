"""Configuration: one TOML file, validated on load, with environment overrides.

Without a file, the bundled SPS profile (``bot/profiles/sps.toml``) is used. A user's file is
laid over that profile section by section: what it leaves out keeps the bundled value, except
that a file giving its own ``[topic]`` must give its own query too.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse
from bot.errors import UserError

DEFAULT_EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"
DEFAULT_CTGOV_URL = "https://clinicaltrials.gov/api/v2"


class ConfigError(UserError, ValueError):
    """A mistake in the configuration; str() is one line per mistake."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


# Schema as data: section -> key -> (type(s), required). Types are checked; unknown keys refused.
_STR, _INT, _FLOAT, _BOOL, _LIST = str, int, (int, float), bool, list


@dataclass(frozen=True)
class SourceSettings:
    """One source's ``[sources.<name>]`` section (``bot.fetch.registry`` says which source reads
    which); its defaults are the bundled profile's (``bot/profiles/sps.toml``)."""

    keys: dict[str, tuple]                   # key -> (type(s), required)
    ranges: tuple = ()                       # (key, lowest, highest), as in RANGES
    url_keys: tuple[str, ...] = ("base_url",)


SOURCE_SETTINGS: dict[str, SourceSettings] = {
    "sources.pubmed": SourceSettings(
        keys={"base_url": (_STR, False), "tool": (_STR, False), "email": (_STR, False),
              "batch_size": (_INT, False), "overlap_days": (_INT, False), "backfill_from": (_STR, False),
              "enabled": (_BOOL, False), "min_interval": (_FLOAT, False), "modified_days": (_INT, False)},
        ranges=(("batch_size", 1, 10000), ("overlap_days", 0, 365), ("modified_days", 0, 365),
                ("min_interval", None, 60))),
    "sources.clinicaltrials": SourceSettings(
        keys={"base_url": (_STR, False), "page_size": (_INT, False), "min_interval": (_FLOAT, False),
              "overlap_days": (_INT, False), "enabled": (_BOOL, False)},
        ranges=(("page_size", 1, 1000), ("overlap_days", 0, 365), ("min_interval", None, 60))),
}

SCHEMA: dict[str, dict[str, tuple]] = {
    "topic": {
        "name": (_STR, True), "slug": (_STR, False), "acronyms": (_LIST, False), "description": (_STR, False),
        "pubmed_query": (_STR, True), "ctgov_condition": (_STR, False), "ctgov_terms": (_LIST, False),
        "feeds": (_LIST, False), "examples": (_LIST, False), "negatives": (_LIST, False),
        "mesh": (_LIST, False), "bundled_themes": (_BOOL, False),
    },
    "themes": {
        "name": (_STR, True), "title": (_STR, False), "description": (_STR, True),
        "plain_title": (_STR, False), "plain_description": (_STR, False),  # for patients and carers
        "examples": (_LIST, False), "include_terms": (_LIST, False), "exclude_terms": (_LIST, False),
    },
    **{section: settings.keys for section, settings in SOURCE_SETTINGS.items()},
    "ranking": {"model": (_STR, False), "relevance_threshold": (_FLOAT, False), "theme_threshold": (_FLOAT, False),
                "seed": (_STR, False), "vote_weight": (_FLOAT, False), "embedding": (_STR, False),
                "window": (_INT, False), "precision": (_STR, False)},
    "digest": {"period_days": (_INT, False), "max_items": (_INT, False), "archive_url": (_STR, False),
               "schedule_day": (_STR, False), "max_age_days": (_INT, False)},
    "email": {
        "from": (_STR, False), "smtp_url": (_STR, False), "username": (_STR, False),
        "unsubscribe_url": (_STR, False), "unsubscribe_mailto": (_STR, False), "subject": (_STR, False),
        "timeout": (_FLOAT, False), "allow_plaintext_auth": (_BOOL, False),
    },
    # Limits against hostile or broken servers (bot/sources/http.py) and a whole run (bot/pipeline.py).
    "http": {"request_deadline": (_FLOAT, False), "max_response_mb": (_FLOAT, False)},
    "run": {"deadline_minutes": (_FLOAT, False)},
    "web": {
        "base_url": (_STR, False), "threads": (_INT, False), "connection_limit": (_INT, False),
        "channel_timeout": (_INT, False), "request_timeout": (_INT, False), "max_body_bytes": (_INT, False),
        "trusted_proxy": (_STR, False), "signups_per_address_day": (_INT, False),
        "signups_per_client_hour": (_INT, False), "signup_mails_per_hour": (_INT, False),
        "posts_per_client_minute": (_INT, False), "searches_per_client_minute": (_INT, False),
        "semantic_search": (_BOOL, False), "results_per_page": (_INT, False),
        "search_seconds": (_FLOAT, False), "search_slots": (_INT, False),
    },
}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_URL_KEYS = {("web", "base_url"), *((section, key) for section, settings in SOURCE_SETTINGS.items()
                                    for key in settings.url_keys)}
# (section, key, lowest, highest) for numbers that type-check but may make no sense (issue 11): a
# negative overlap silently skips days, a zero timeout fails every request, a NaN passes every
# comparison. NaN and infinity are never accepted; lowest None = 0 or more seconds.
RANGES = (("digest", "max_items", 1, 200), ("digest", "period_days", 1, 366),
          *((section, *r) for section, settings in SOURCE_SETTINGS.items() for r in settings.ranges),
          ("web", "threads", 1, 64), ("web", "connection_limit", 10, 10000), ("web", "channel_timeout", 1, 3600),
          ("web", "request_timeout", 1, 3600), ("web", "max_body_bytes", 1024, 10_000_000),
          ("web", "signups_per_address_day", 1, 100), ("web", "signups_per_client_hour", 1, 10000),
          ("web", "signup_mails_per_hour", 1, 100000), ("web", "posts_per_client_minute", 1, 10000),
          ("web", "searches_per_client_minute", 1, 10000), ("web", "results_per_page", 1, 100),
          ("web", "search_slots", 1, 64), ("ranking", "window", 16, 512),
          # a vote may count for nothing, never for more than a curator's label (5 seed examples)
          ("ranking", "vote_weight", 0, 5),
          ("email", "timeout", 0, 600), ("ranking", "relevance_threshold", 0, 1),
          ("ranking", "theme_threshold", 0, 1), ("digest", "max_age_days", 1, 3660),
          ("http", "request_deadline", 0.01, 86400), ("http", "max_response_mb", 0.001, 1_000_000),
          ("run", "deadline_minutes", 0.001, 10080))
_ABOVE_LOWEST = {("email", "timeout")}  # the lowest itself is refused too


@dataclass(frozen=True)
class Theme:
    name: str
    description: str
    title: str = ""
    plain_title: str = ""        # the theme in everyday words (the plain-style digest, the web front)
    plain_description: str = ""
    examples: tuple[str, ...] = ()
    include_terms: tuple[str, ...] = ()
    exclude_terms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Feed:
    url: str
    name: str = ""


@dataclass(frozen=True)
class Topic:
    name: str
    pubmed_query: str
    slug: str = "topic"        # a label (subjects, site name), never a scoring term
    acronyms: tuple[str, ...] = ()  # the topic's abbreviations the ranker looks for ("SPS")
    description: str = ""
    ctgov_condition: str = ""
    ctgov_terms: tuple[str, ...] = ()
    feeds: tuple[Feed, ...] = ()
    examples: tuple[str, ...] = ()
    negatives: tuple[str, ...] = ()
    # NLM MeSH headings whose major-topic indexing marks a stored record as about the topic (its weak
    # labels, bot.ranking.weak); None = read them from the name and the query's names.
    mesh: tuple[str, ...] | None = None


@dataclass
class Config:
    """The whole validated configuration. ``sections`` keeps the merged raw tables."""

    topic: Topic
    themes: tuple[Theme, ...]
    sections: dict[str, dict] = field(default_factory=dict)
    path: str | None = None
    glossary: dict[str, str] = field(default_factory=dict)  # abbreviation -> spelled out (plain style)

    def section(self, name: str) -> dict:
        return self.sections.get(name, {})

    # The tables the stages read, by name ({} for one the configuration leaves out).
    pubmed = property(lambda self: self.section("sources.pubmed"))
    clinicaltrials = property(lambda self: self.section("sources.clinicaltrials"))
    ranking = property(lambda self: self.section("ranking"))
    digest = property(lambda self: self.section("digest"))
    email = property(lambda self: self.section("email"))
    web = property(lambda self: self.section("web"))

    @property
    def theme_names(self) -> list[str]:
        return [t.name for t in self.themes]


# What `spsbot init` (bot.starter) writes for the user to replace, so a profile still holding it
# can be named by `rank` and `status`.
STARTER_DESCRIPTION = "{name}: its names, causes, main signs and treatments."
STARTER_QUERY = '"{name}"[tiab]'
STARTER_EXAMPLES = ("patients with {name}", "a case report of {name}")


def placeholders_left(config: Config) -> list[str]:
    """What of ``config`` is still as ``spsbot init`` wrote it (empty for a finished profile)."""
    topic, name = config.topic, config.topic.name
    written = {"description": STARTER_DESCRIPTION.format(name=name),
               "pubmed_query": STARTER_QUERY.format(name=name.replace('"', "")),
               "examples": tuple(e.format(name=name) for e in STARTER_EXAMPLES)}
    left = [key for key, value in written.items() if getattr(topic, key) == value]
    left += [f"include_terms of {theme.name}" for theme in config.themes if not theme.include_terms]
    # No negatives or acronyms may be a choice; beside another placeholder they were never looked at.
    if left:
        left += [key for key in ("negatives", "acronyms") if not getattr(topic, key)]
    return left


def placeholders_warning(config: Config) -> str | None:
    """One line naming the placeholders ``spsbot init`` left in the profile, or None."""
    left = placeholders_left(config)
    if not left:
        return None
    where = f" {config.path}" if config.path else ""
    return (f"the profile{where} still has `spsbot init`'s placeholders in {', '.join(left)}: fill in what "
            f"says TODO, or relevance rests on the topic's name alone")


def bundled_profile_text() -> str:
    return resources.files("bot.profiles").joinpath("sps.toml").read_text(encoding="utf-8")


def load_config(path: str | os.PathLike | None = None, env: dict | None = None) -> Config:
    """Load, merge over the bundled profile, apply environment overrides, validate.

    Raises ConfigError listing every mistake (one line each, naming the key and its line).
    """
    env = os.environ if env is None else env
    base = tomllib.loads(bundled_profile_text())
    if path is None:
        raw, text, where = {}, "", "bundled profile"
    else:
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError([f"config error: cannot read {where}: {e.strerror or e}"]) from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError([f"config error: {where}: invalid TOML: {e}"]) from None
    errors = _validate(raw, text, where)
    if errors:
        raise ConfigError(errors)
    merged = _merge(base, raw)
    _apply_env(merged, env)
    errors = _validate(merged, text, where)  # env values are checked too (e.g. a bad URL)
    if errors:
        raise ConfigError(errors)
    return _build(merged, where if path else None)


def _merge(base: dict, raw: dict) -> dict:
    merged = {"topic": dict(raw.get("topic") or base["topic"]), "themes": [dict(t) for t in _themes(base, raw)],
              "sources": {}, "glossary": dict(_own_or_bundled(base, raw, "glossary") or {})}
    for name in _source_names():
        merged["sources"][name] = {**base["sources"][name], **raw.get("sources", {}).get(name, {})}
    for name in ("ranking", "digest", "email", "web", "http", "run"):
        merged[name] = {**base.get(name, {}), **raw.get(name, {})}
    return merged


def _source_names() -> list[str]:
    """"pubmed", "clinicaltrials": the ``[sources.*]`` tables ``SOURCE_SETTINGS`` describes."""
    return [section.split(".", 1)[1] for section in SOURCE_SETTINGS]


def _themes(base: dict, raw: dict) -> list[dict]:
    """The file's own [[themes]]; else the bundled SPS themes, unless the file is about another
    disease: its topic then has no themes until it gives some or says ``bundled_themes = true``
    (a myasthenia gravis digest must not be sorted by SPS drug lists)."""
    return _own_or_bundled(base, raw, "themes") or []


def _own_or_bundled(base: dict, raw: dict, key: str):
    """The file's own table ``key``; else the bundled one, unless the file is about another
    disease (and does not say ``bundled_themes = true``): then None."""
    if raw.get(key):
        return raw[key]
    topic = raw.get("topic")
    if isinstance(topic, dict) and topic.get("name") != base["topic"]["name"] and not topic.get("bundled_themes"):
        return None
    return base.get(key)


def _apply_env(cfg: dict, env) -> None:
    """Environment overrides (a contract: deployments and tests rely on these names)."""
    if env.get("SPSBOT_EUTILS_URL"):
        cfg["sources"]["pubmed"]["base_url"] = env["SPSBOT_EUTILS_URL"]
    if env.get("SPSBOT_CTGOV_URL"):
        cfg["sources"]["clinicaltrials"]["base_url"] = env["SPSBOT_CTGOV_URL"]
    if env.get("NCBI_EMAIL"):
        cfg["sources"]["pubmed"]["email"] = env["NCBI_EMAIL"]
    if env.get("SPSBOT_SMTP_URL"):
        cfg["email"]["smtp_url"] = env["SPSBOT_SMTP_URL"]
    if env.get("SPSBOT_SMTP_FROM"):
        cfg["email"]["from"] = env["SPSBOT_SMTP_FROM"]


def _line_of(text: str, key: str, section: str | None = None) -> str:
    """Best-effort ' (line N)' for a key, searched after its section header."""
    if not text:
        return ""
    lines = text.splitlines()
    start = 0
    if section:
        header = re.compile(r"^\s*\[\[?\s*" + re.escape(section) + r"\s*\]\]?\s*$")
        start = next((i for i, line in enumerate(lines) if header.match(line)), 0)
    pattern = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for i in range(start, len(lines)):
        if pattern.match(lines[i]):
            return f" (line {i + 1})"
    return ""


def _tables(cfg: dict):
    """Yield (section name, table) for every table the schema knows, plus unknown top-level keys."""
    for key, value in cfg.items():
        if key == "sources":
            if not isinstance(value, dict):
                yield "sources", value
                continue
            for sub, table in value.items():
                yield f"sources.{sub}", table
        elif key == "themes":
            if not isinstance(value, list):
                yield "themes", value
                continue
            for table in value:
                yield "themes", table
        else:
            yield key, value


def _validate(cfg: dict, text: str, where: str) -> list[str]:
    errors: list[str] = []

    def err(msg, key=None, section=None):
        errors.append(f"config error: {where}: {msg}{_line_of(text, key, section) if key else ''}")

    for section, table in _tables(cfg):
        if section == "glossary":  # abbreviation = "spelled out", any abbreviation
            bad = [k for k, v in table.items() if not isinstance(v, str) or not v.strip()] \
                if isinstance(table, dict) else None
            if bad is None:
                err("[glossary] must be a table of abbreviation = \"what it stands for\"")
            for key in bad or []:
                err(f"'{key}' in [glossary] must be a non-empty string", key, section)
            continue
        schema = SCHEMA.get(section)
        if schema is None:
            err(f"unknown section [{section}]", section.split(".")[-1])
            continue
        if not isinstance(table, dict):
            err(f"[{section}] must be a table")
            continue
        for key, value in table.items():
            if key not in schema:
                err(f"unknown key '{key}' in [{section}]", key, section)
                continue
            types = schema[key][0]
            if types is _INT and isinstance(value, bool) or not isinstance(value, types):
                expected = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}.get(
                    types, "a number")
                err(f"'{key}' in [{section}] must be {expected}, got {type(value).__name__}", key, section)
                continue
            if (section, key) in _URL_KEYS and not _is_http_url(value) and (value or section != "web"):
                err(f"'{key}' in [{section}] is not an http(s) URL: {value!r}", key, section)
            if isinstance(value, list) and key != "feeds" and not all(isinstance(v, str) for v in value):
                err(f"'{key}' in [{section}] must be a list of strings", key, section)
        for key, (_, required) in schema.items():
            if required and key not in table and (section != "topic" or table):
                err(f"[{section}] is missing required key '{key}'")
        if section == "topic" and isinstance(table.get("pubmed_query"), str) and not table["pubmed_query"].strip():
            err("'pubmed_query' in [topic] is empty", "pubmed_query", "topic")
        if section == "topic":
            for feed in table.get("feeds", []) or []:
                url = feed.get("url") if isinstance(feed, dict) else feed
                if not isinstance(url, str) or not _is_http_url(url):
                    err(f"feed {feed!r} in [topic] is not an http(s) URL", "feeds", "topic")
    _check_ranges(cfg, err)
    day = (cfg.get("digest") or {}).get("schedule_day")
    if isinstance(day, str) and day.lower() not in WEEKDAYS:
        err(f"'schedule_day' in [digest] must be a weekday (monday … sunday), got {day!r}", "schedule_day", "digest")
    backfill = (cfg.get("sources", {}).get("pubmed") or {}).get("backfill_from")
    if isinstance(backfill, str) and not _is_date(backfill):
        err(f"'backfill_from' in [sources.pubmed] must be a date like 1950/01/01, got {backfill!r}",
            "backfill_from", "sources.pubmed")
    embedding = (cfg.get("ranking") or {}).get("embedding")
    if isinstance(embedding, str) and embedding not in ("passage", "sentences"):
        err(f"'embedding' in [ranking] must be \"passage\" or \"sentences\", got {embedding!r}", "embedding", "ranking")
    precision = (cfg.get("ranking") or {}).get("precision")
    if isinstance(precision, str) and precision not in ("auto", "float32", "bfloat16", "int8"):
        err(f"'precision' in [ranking] must be \"auto\", \"float32\", \"bfloat16\" or \"int8\", got {precision!r}",
            "precision", "ranking")
    smtp = (cfg.get("email") or {}).get("smtp_url")
    if isinstance(smtp, str) and smtp and urlparse(smtp).scheme not in ("smtp", "smtps", "smtp+starttls"):
        err(f"'smtp_url' in [email] must start smtp://, smtps:// or smtp+starttls://, got {smtp!r}",
            "smtp_url", "email")
    names = [t.get("name") for t in cfg.get("themes", []) if isinstance(t, dict)]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        err(f"duplicate theme name(s): {', '.join(sorted(map(str, dupes)))}")
    return errors


def _check_ranges(cfg: dict, err) -> None:
    for section, key, low, high in RANGES:
        table = cfg.get(section) if "." not in section else cfg.get("sources", {}).get(section.split(".")[1])
        value = (table or {}).get(key)
        if isinstance(value, bool) or not isinstance(value, SCHEMA[section][key][0]):
            continue  # absent, or already reported as the wrong type
        above = (section, key) in _ABOVE_LOWEST
        if not math.isfinite(value):
            err(f"'{key}' in [{section}] must be a finite number, got {value}", key, section)
        elif low is None and value < 0:
            err(f"'{key}' in [{section}] must be 0 or more seconds, got {value}", key, section)
        elif low is None and value > high:
            err(f"'{key}' in [{section}] must be at most {high}, got {value}", key, section)
        elif low is not None and (not low <= value <= high or above and value == low):
            bound = f"greater than {low} and at most {high}" if above else f"between {low} and {high}"
            err(f"'{key}' in [{section}] must be {bound}, got {value}", key, section)


_DATE_RE = re.compile(r"^(\d{4})[/-](\d{2})[/-](\d{2})$")


def _is_date(value: str) -> bool:
    """YYYY/MM/DD (or YYYY-MM-DD), a day that exists."""
    match = _DATE_RE.match(value.strip())
    try:
        return bool(match) and date(*map(int, match.groups())) is not None
    except ValueError:
        return False


def _is_http_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _build(cfg: dict, path: str | None) -> Config:
    t = cfg["topic"]
    feeds = tuple(Feed(url=f["url"], name=f.get("name", "")) if isinstance(f, dict) else Feed(url=f)
                  for f in t.get("feeds", []))
    topic = Topic(
        name=t["name"], pubmed_query=t["pubmed_query"].strip(), slug=t.get("slug", "topic"),
        acronyms=tuple(t.get("acronyms", [])), description=t.get("description", ""),
        ctgov_condition=t.get("ctgov_condition", ""),
        ctgov_terms=tuple(t.get("ctgov_terms", [])), feeds=feeds,
        examples=tuple(t.get("examples", [])), negatives=tuple(t.get("negatives", [])),
        mesh=tuple(t["mesh"]) if "mesh" in t else None,
    )
    themes = tuple(
        Theme(name=th["name"], description=th["description"], title=th.get("title") or th["name"].title(),
              plain_title=th.get("plain_title", ""), plain_description=th.get("plain_description", ""),
              examples=tuple(th.get("examples", [])), include_terms=tuple(th.get("include_terms", [])),
              exclude_terms=tuple(th.get("exclude_terms", [])))
        for th in cfg["themes"]
    )
    sections = {**{f"sources.{name}": cfg["sources"][name] for name in _source_names()},
                "ranking": cfg["ranking"], "digest": cfg["digest"], "email": cfg["email"], "web": cfg["web"],
                "http": cfg.get("http", {}), "run": cfg.get("run", {})}
    return Config(topic=topic, themes=themes, sections=sections, path=path, glossary=dict(cfg.get("glossary") or {}))
