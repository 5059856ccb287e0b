"""RSS 2.0, RSS 1.0/RDF and Atom feeds → paper records.

Pure HTTP + parsing, no database code. Downloads go through ``HttpClient`` (timeouts, retries,
spacing per host); the bytes are parsed by feedparser, which copes with every feed dialect.
Each entry becomes a ``kind="paper"`` record with ``source="feed:<name or host>"`` and whatever
identifiers it carries (DOI, PMID, arXiv id), so the store can match it to the same paper from
PubMed (DOI → PMID → normalised title).

feedparser: https://feedparser.readthedocs.io/
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import feedparser

from bot.errors import one_line
from bot.sources.html_text import html_to_text
from bot.sources.http import HttpClient, SourceError, source_client

log = logging.getLogger(__name__)

DOI_RE = re.compile(r"\b(10\.\d{4,9}/[^\s\"'<>]+)", re.I)
PUBMED_LINK_RE = re.compile(r"(?:pubmed\.ncbi\.nlm\.nih\.gov/|ncbi\.nlm\.nih\.gov/pubmed/)(\d{1,9})\b")
PMID_TEXT_RE = re.compile(r"\b(?:pmid|pubmed)\s*:\s*(\d{1,9})\b", re.I)
ARXIV_RE = re.compile(r"(?:arxiv\.org/(?:abs|pdf)/|oai:arXiv\.org:|\barXiv:)"  # URL, OAI id or "arXiv:" prefix
                      r"(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})"  # new-style or old-style id
                      r"(v\d+)?", re.I)
ARXIV_PREFIX_RE = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*(?:Abstract:\s*)?", re.I)
NCT_RE = re.compile(r"\bNCT\s?(\d{8})\b", re.I)
# The types feedparser gives HTML text (its *_detail["type"]); any other is taken as plain text.
HTML_TYPES = {"text/html", "application/xhtml+xml"}
# An untitled entry is titled with its own text's first sentence, or this many words of it.
TITLE_WORDS = 15
SENTENCE_END_RE = re.compile(r"[.!?]$")
# bioRxiv/medRxiv, arXiv, Research Square, Preprints.org
PREPRINT_DOI_PREFIXES = ("10.1101/", "10.48550/", "10.21203/", "10.20944/")


class FeedError(SourceError):
    """One feed could not be read or parsed."""


@dataclass
class FeedResult:
    """What one feed gave: records, plus the feed's own title and any parse warning."""
    url: str
    source: str
    records: list[dict] = field(default_factory=list)
    title: str = ""
    warning: str = ""
    skipped: int = 0   # entries with no title, no text and no link: nothing to show or link to


def make_client(url: str, *, min_interval: float | None = None, **http_options) -> HttpClient:
    """The chokepoint for a feed's host (one per host: spacing and retries apply per server, not
    per feed); ``min_interval`` None: 1 s. ``http_options`` (None values left out) go to ``HttpClient``."""
    parts = urlsplit(url)
    return source_client(f"{parts.scheme}://{parts.netloc}", name=f"feed {parts.netloc}",
                         min_interval=1.0 if min_interval is None else min_interval, **http_options)


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def source_name(url: str, name: str = "") -> str:
    return f"feed:{name or urlsplit(url).netloc}"


def download(client: HttpClient, url: str) -> tuple[bytes, str]:
    """The feed's bytes and its Content-Type header (the charset a server gives there outranks
    the XML declaration, RFC 7303; feedparser weighs the two)."""
    response = client.request(_path_of(url))
    return response.content, response.headers.get("Content-Type", "")


def parse_feed(data: bytes, *, url: str = "", name: str = "", content_type: str = "") -> FeedResult:
    """Parse feed bytes into paper records; bytes feedparser finds no feed in raise FeedError.

    feedparser is lenient: a feed with a recoverable problem ("bozo": an undefined entity such as
    ``&hellip;``, a wrong encoding declaration, broken XML it read on) is read, entries or just
    the channel, with the problem noted in ``warning``.
    """
    parsed = feedparser.parse(data, response_headers={"content-type": content_type} if content_type else None)
    source = source_name(url, name)
    problem = one_line(parsed.bozo_exception) if parsed.bozo else ""
    # feedparser names the dialect ("rss20", "atom10"…) once it has recognised a channel; an HTML
    # error page or an empty body gets no version and no entries.
    if not parsed.entries and not parsed.get("version"):
        raise FeedError(f"{source}: not a readable feed ({problem or 'no RSS, RDF or Atom channel in it'})")
    result = FeedResult(url=url, source=source, title=_text(parsed.feed, "title"), warning=problem)
    journal = _plain(parsed.feed.get("prism_publicationname")) or result.title
    for entry in parsed.entries:
        record = parse_entry(entry, source=result.source, journal=journal)
        if record:
            result.records.append(record)
        else:
            result.skipped += 1
    return result


def _text(node, key: str) -> str:
    """The text of a feed's or an entry's ``key`` as feedparser's ``<key>_detail`` types it."""
    return _as_text(node.get(key), (node.get(f"{key}_detail") or {}).get("type"))


def _as_text(value, content_type: str | None) -> str:
    """HTML is parsed to its text; anything else is plain text, kept as it is (a ``<`` in it is text)."""
    if not value:
        return ""
    if content_type in HTML_TYPES:
        return html_to_text(str(value))
    return _plain(value)


def _summary(entry) -> str:
    """RSS <description> / Atom <summary>, else the first <content>. (feedparser copies a content
    into "summary" without a "summary_detail": its type is the content's.)"""
    if (entry.get("summary") and entry.get("summary_detail")) or not entry.get("content"):
        return _text(entry, "summary")
    content = entry["content"][0]
    return _as_text(content.get("value"), content.get("type"))


def _plain(value) -> str:
    """Plain text, whitespace collapsed (nothing else: a ``<`` or ``&`` in it is the text's own)."""
    return " ".join(str(value).split()) if value else ""


def _authors(entry) -> list[str]:
    """Author names; a single dc:creator listing several full names is split on commas."""
    names = [_plain(a.get("name")) for a in entry.get("authors") or [] if a.get("name")]
    if not names and entry.get("author"):
        names = [_plain(entry["author"])]
    out = []
    for name in names:
        parts = [p.strip() for p in re.split(r",|;| and ", name) if p.strip()]
        # "Smith, John" is one person; "John Smith, Jane Doe" is two.
        if len(parts) > 1 and all(len(p.split()) >= 2 for p in parts):
            out.extend(parts)
        else:
            out.append(name)
    return out


def _date(entry) -> str | None:
    """The entry's date as ISO (YYYY-MM-DD): prism/dc/Atom ISO strings as written, else RFC 822."""
    for key in ("prism_publicationdate", "published", "dc_date", "updated", "prism_coverdate"):
        raw = entry.get(key)
        if raw and re.match(r"^\d{4}-\d{2}-\d{2}", raw):
            return raw[:10]
    for key in ("published_parsed", "updated_parsed"):
        parsed = entry.get(key)
        if parsed:
            return time.strftime("%Y-%m-%d", parsed)
    return None


def _identifier_texts(entry) -> list[str]:
    """Every string that may hold an identifier: ids, links, dc:identifier, prism:doi."""
    texts = [entry.get("id"), entry.get("link"), entry.get("dc_identifier"), entry.get("prism_doi"),
             entry.get("guid")]
    texts += [link.get("href") for link in entry.get("links") or []]
    return [str(t) for t in texts if t]


def find_doi(entry, summary: str = "") -> str | None:
    for key in ("prism_doi", "dc_identifier"):
        value = (entry.get(key) or "").strip()
        match = DOI_RE.search(value)
        if match:
            return _tidy_doi(match.group(1))
    for text in _identifier_texts(entry):
        if "doi.org/" in text or text.lower().startswith("doi:"):
            match = DOI_RE.search(text)
            if match:
                return _tidy_doi(match.group(1))
    match = re.search(r"\bdoi:\s*(10\.\d{4,9}/\S+)", summary, re.I)
    return _tidy_doi(match.group(1)) if match else None


def _tidy_doi(doi: str) -> str:
    return doi.rstrip(".,;)]").lower()


def find_pmid(entry) -> str | None:
    for text in _identifier_texts(entry):
        match = PUBMED_LINK_RE.search(text) or PMID_TEXT_RE.search(text)
        if match:
            return match.group(1)
    return None


def find_arxiv_id(entry) -> str | None:
    for text in _identifier_texts(entry):
        match = ARXIV_RE.search(text)
        if match:
            return match.group(1)
    return None


def title_from_text(text: str) -> str:
    """A title for an untitled entry, from its own text: the first sentence when it is short, else
    its first ``TITLE_WORDS`` words and "…" (many feeds — microblogs, some TOCs — give no title)."""
    words = text.split()
    for n, word in enumerate(words[:TITLE_WORDS], 1):
        if SENTENCE_END_RE.search(word):
            return " ".join(words[:n])
    return " ".join(words[:TITLE_WORDS]) + (" …" if len(words) > TITLE_WORDS else "")


def parse_entry(entry, *, source: str, journal: str = "") -> dict | None:
    """One feed entry → a paper record. An untitled entry is titled from its summary, else its
    link; one with neither text nor link is None (nothing to show a reader)."""
    summary = ARXIV_PREFIX_RE.sub("", _summary(entry))
    title, title_from = _text(entry, "title"), None
    if not title:
        title, title_from = (title_from_text(summary), "summary") if summary else (entry.get("link"), "link")
        if not title:
            return None
    doi = find_doi(entry, summary)
    arxiv_id = find_arxiv_id(entry)
    if arxiv_id and not doi and re.match(r"^\d{4}\.\d{4,5}$", arxiv_id):
        doi = f"10.48550/arxiv.{arxiv_id}"  # arXiv's own DOI: the key a later published version cites
    date = _date(entry)
    preprint = bool(arxiv_id) or bool(doi and doi.startswith(PREPRINT_DOI_PREFIXES))
    text = f"{title} {summary}"
    extra = {"feed_entry_id": entry.get("id"), "arxiv_id": arxiv_id, "preprint": preprint,
             "categories": [t.get("term") for t in entry.get("tags") or [] if t.get("term")],
             "title_from": title_from}
    return {
        "kind": "paper", "source": source, "title": title, "abstract": summary or None,
        "doi": doi, "pmid": find_pmid(entry), "authors": _authors(entry),
        "journal": _plain(entry.get("prism_publicationname")) or journal or None,
        "pub_date": date, "pub_year": int(date[:4]) if date else None,
        "url": entry.get("link") or None,
        "pub_types": ["Preprint"] if preprint else [],
        "nct_ids": sorted({f"NCT{m}" for m in NCT_RE.findall(text)}),
        "extra": {k: v for k, v in extra.items() if v not in (None, [], False)},
    }


def read_feed(client: HttpClient, url: str, name: str = "") -> FeedResult:
    """Download and parse one feed; any failure is a FeedError naming the feed."""
    try:
        data, content_type = download(client, url)
    except SourceError as e:
        raise FeedError(f"{source_name(url, name)}: {e}") from None
    return parse_feed(data, url=url, name=name, content_type=content_type)
