"""spsbot's reading of feedparser's own test corpus against feedparser's (tests/fixtures/feedparser/).

For every file: a feed feedparser can read (entries, or a channel it recognised) is read, with one
record per entry that has a title, a text or a link, in order (only an entry with none of the
three is skipped); each title, summary and link is feedparser's value, where the only allowed
difference is markup flattened to its text. An untitled entry's title is the start of its own
text (whole words, "…" when cut), else its link. "Flattened" is worked out here
independently of spsbot: plain text (``text/plain``…) must come back exactly, whitespace
collapsed; HTML (``text/html``, ``application/xhtml+xml``) must come back with the same characters
as html.parser's bare text nodes, whitespace aside (spsbot puts spaces for block elements).

Run as a script to print the counts for any copy of the corpus (the whole of feedparser's
``tests/`` for the issue's before/after figures):
``.venv/bin/python tests/test_feed_corpus.py DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

import feedparser
import pytest

from bot.sources.feeds import FeedError, parse_feed
from medical_text import text_nodes

CORPUS = Path(__file__).parent / "fixtures" / "feedparser"
FILES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.xml"))
HTML_TYPES = {"text/html", "application/xhtml+xml"}


def expected(value, content_type) -> tuple[str, bool]:
    """(feedparser's value as text, whether its type is HTML)."""
    if not value:
        return "", False
    if content_type in HTML_TYPES:
        return "".join(text_nodes(value)), True
    return value, False


def same_text(ours: str | None, value, content_type) -> bool:
    text, was_html = expected(value, content_type)
    if was_html:   # block elements may add spaces; every other character must be there, in order
        return "".join((ours or "").split()) == "".join(text.split())
    return (ours or "") == " ".join(text.split())


def fields(node) -> dict[str, tuple]:
    """(value, type) of a feed's or an entry's title and summary (else its first content), as
    feedparser gives them: the value from ``title``, the type from ``title_detail`` (which may
    describe another node: tests/fixtures/feedparser/wellformed/node_precedence)."""
    out = {"title": (node.get("title"), (node.get("title_detail") or {}).get("type"))}
    if node.get("summary") and node.get("summary_detail") or not node.get("content"):
        out["summary"] = (node.get("summary"), (node.get("summary_detail") or {}).get("type"))
    else:   # feedparser copied the content into "summary" with no summary_detail
        out["summary"] = (node["content"][0].get("value"), node["content"][0].get("type"))
    return out


def _has(entry, key: str) -> bool:
    return bool(expected(*fields(entry)[key])[0].strip())


def title_from_own_text(ours: str, entry) -> bool:
    """An untitled entry's title: its link, else its whole text, or the start of its text's
    characters (whitespace aside) ending with a sentence or with "…" where it was cut."""
    if not _has(entry, "summary"):
        return ours == entry.get("link")
    text = "".join(expected(*fields(entry)["summary"])[0].split())
    if "".join(ours.split()) == text:
        return True
    start = "".join(ours.removesuffix("…").split())
    return bool(start) and text.startswith(start) and (ours.endswith("…") or start[-1] in ".!?")


def compare(data: bytes) -> dict:
    """Counts for one file: readable (by feedparser), failed (by spsbot), entries, titled, untitled
    (with a text or a link: read too), empty (neither: skipped), records, dropped (entries that
    should be records and are not), changed (titles, summaries, links, feed title)."""
    parsed = feedparser.parse(data)
    titled = [e for e in parsed.entries if _has(e, "title")]
    readable = [e for e in parsed.entries if _has(e, "title") or _has(e, "summary") or e.get("link")]
    out = {"files": 1, "readable": int(bool(parsed.entries or parsed.get("version"))), "failed": 0,
           "entries": len(parsed.entries), "titled": len(titled), "untitled": len(readable) - len(titled),
           "empty": len(parsed.entries) - len(readable), "records": 0, "dropped": 0, "changed": 0,
           "problems": []}
    try:
        result = parse_feed(data)
    except FeedError as e:
        out.update(failed=1, dropped=len(readable), problems=[f"failed: {e}"] if out["readable"] else [])
        return out
    out["records"] = len(result.records)
    checks = [("feed title", result.title, fields(parsed.feed)["title"])]
    if len(result.records) != len(readable) or result.skipped != out["empty"]:
        out["dropped"] = max(0, len(readable) - len(result.records))
        out["problems"].append(f"{len(result.records)} records for {len(readable)} entries with a title, "
                               f"text or link; {result.skipped} skipped for {out['empty']} empty")
        readable = []
    for entry, record in zip(readable, result.records):
        theirs = fields(entry)
        if _has(entry, "title"):
            checks.append(("title", record["title"], theirs["title"]))
        elif not title_from_own_text(record["title"], entry):
            out["changed"] += 1
            out["problems"].append(f"untitled entry's title {record['title']!r} is not the start of its own text")
        checks.append(("summary", record["abstract"], theirs["summary"]))
        if (record["url"] or None) != (entry.get("link") or None):
            out["changed"] += 1
            out["problems"].append(f"link {record['url']!r} ≠ {entry.get('link')!r}")
    for name, ours, (value, content_type) in checks:
        if not same_text(ours, value, content_type):
            out["changed"] += 1
            out["problems"].append(f"{name} {ours!r} ≠ {expected(value, content_type)[0]!r} ({content_type})")
    return out


def test_the_vendored_corpus_is_there():
    assert len(FILES) >= 300
    assert {f.split("/")[0] for f in FILES} == {"wellformed", "illformed", "encoding", "entities"}


@pytest.mark.parametrize("name", FILES)
def test_feedparser_corpus_file_reads_as_feedparser_reads_it(name):
    counts = compare((CORPUS / name).read_bytes())
    assert counts["problems"] == []
    if counts["readable"]:   # read, one record per entry with a title, a text or a link
        assert counts["failed"] == 0 and counts["records"] == counts["titled"] + counts["untitled"]
    else:                    # nothing feedparser could read: that feed fails, alone
        assert counts["failed"] == 1


def main(folder: str) -> None:
    keys = ("files", "readable", "failed", "entries", "titled", "untitled", "empty", "records", "dropped",
            "changed")
    total = dict.fromkeys(keys, 0)
    wrongly_failed = 0
    root = Path(folder)
    for path in sorted(root.rglob("*.xml")):
        counts = compare(path.read_bytes())
        for key in keys:
            total[key] += counts[key]
        wrongly_failed += counts["readable"] and counts["failed"]
        for problem in counts["problems"]:
            print(f"{path.relative_to(root)}: {problem}"[:300])
    print(" ".join(f"{k}={v}" for k, v in total.items()), f"failed_but_feedparser_reads={wrongly_failed}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(CORPUS))
