"""Salvage an XML answer whose only faults are characters XML forbids or bytes that are not UTF-8.

PubMed has served records holding a control character (raw, or as a reference such as
``&#x1;``) and, rarely, bytes that are not UTF-8. Either makes the whole answer unparseable,
though every other character of the record is fine. ``salvage(body)`` removes exactly those
characters and says, for each, what it was, in which record (its first ``<PMID>``) and in which
field (the innermost element holding it, inline markup such as ``<i>`` skipped), so the record
can be stored with a note instead of being held. Anything else wrong with the XML (a broken tag,
a truncated answer) is not touched: ``salvage`` returns None and the caller isolates the record.

    cleaned, removals = salvage(body) or (body, [])
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

# XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
_RAW_ILLEGAL = "\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff"
# One fault: a run of bytes that are not UTF-8 (surrogate-escaped when decoded), a raw character
# XML forbids, or a numeric character reference (the only way to write one) to such a character.
_FAULT_RE = re.compile(rf"[\udc80-\udcff]+|[{_RAW_ILLEGAL}]|&#(?:x([0-9A-Fa-f]{{1,8}})|([0-9]{{1,9}}));")
_ENCODING_RE = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
# Each fault is replaced by its own marker (Unicode plane 15, private use: legal XML, never in
# PubMed text) so the parser can say where it sat.
_MARK = 0xF0000
MAX_REMOVALS = 1000   # more than this is not a record with a bad character, it is a bad answer
INLINE = {"i", "b", "u", "sub", "sup", "math"}


@dataclass
class Removal:
    """One thing removed: ``what`` ("U+0001", "&#x1;", "bytes FF FE (not UTF-8)"), the ``record``
    it sat in (None outside any) and its ``field`` ("ArticleTitle", "Author@ValidYN"…)."""

    what: str
    record: str | None = None
    field: str | None = None


def _legal(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def _describe(match: re.Match) -> str | None:
    """What a fault match is, or None when it is a legal character reference."""
    text = match.group(0)
    if text.startswith("&#"):
        code = int(match.group(1), 16) if match.group(1) is not None else int(match.group(2))
        return None if _legal(code) else f"the character reference {text}"
    if "\udc80" <= text[0] <= "\udcff":
        raw = text.encode("utf-8", "surrogateescape")
        return f"the byte{'s' if len(raw) > 1 else ''} {raw.hex(' ').upper()} (not UTF-8)"
    return f"U+{ord(text):04X} (a control character XML forbids)"


def salvage(body: bytes, record_tags=("PubmedArticle", "PubmedBookArticle"),
            id_tag: str = "PMID") -> tuple[bytes, list[Removal]] | None:
    """``body`` without its forbidden characters and undecodable bytes, and what was removed
    where; None when there is nothing to remove, the answer is not UTF-8 by declaration, or it is
    broken in another way too (it still cannot be parsed once they are removed)."""
    declared = _ENCODING_RE.match(body)
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        return None
    text = body.decode("utf-8", "surrogateescape")
    removals: list[Removal] = []

    def mark(match: re.Match) -> str:
        what = _describe(match)
        if what is None or len(removals) >= MAX_REMOVALS:
            return match.group(0)
        removals.append(Removal(what))
        return chr(_MARK + len(removals) - 1)

    marked = _FAULT_RE.sub(mark, text)
    if not removals or len(removals) >= MAX_REMOVALS:
        return None
    try:
        _locate(marked.encode("utf-8"), removals, record_tags, id_tag)
    except ET.ParseError:
        return None
    cleaned = re.sub(f"[{chr(_MARK)}-{chr(_MARK + len(removals) - 1)}]", "", marked)
    return cleaned.encode("utf-8"), removals


def _locate(data: bytes, removals: list[Removal], record_tags, id_tag: str) -> None:
    """Fill in each removal's record and field by parsing the marked answer (ElementTree: no DTD
    is read)."""
    stack: list[ET.Element] = []
    in_record: list[Removal] = []    # found in the current record (its id may come later)
    record_id = None

    def found(value: str | None, elements: list[ET.Element], suffix: str = "") -> None:
        for char in value or "":
            index = ord(char) - _MARK
            if 0 <= index < len(removals):
                field = next((e.tag for e in reversed(elements) if e.tag not in INLINE), elements[-1].tag)
                removals[index].field = field + suffix
                in_record.append(removals[index])

    for event, element in ET.iterparse(io.BytesIO(data), events=("start", "end")):
        if event == "start":
            stack.append(element)
            if element.tag in record_tags:
                record_id, in_record = None, []
            continue
        for name, value in element.attrib.items():
            found(value, stack, f"@{name}")
        found(element.text, stack)
        stack.pop()
        if element.tag == id_tag and record_id is None and any(e.tag in record_tags for e in stack):
            record_id = (element.text or "").strip() or None
        if element.tag in record_tags:
            for removal in in_record:
                removal.record = record_id
            record_id, in_record = None, []
        if stack:
            found(element.tail, stack)
        if element.tag in record_tags:
            element.clear()   # a batch can be long: keep one record in memory at a time


def notes(removals: list[Removal]) -> dict[str | None, list[str]]:
    """record -> one line per field: "removed U+0001 (a control character XML forbids) from
    ArticleTitle"; several things removed from one field are listed together, with counts."""
    by_field: dict[tuple, list[str]] = {}
    for removal in removals:
        by_field.setdefault((removal.record, removal.field), []).append(removal.what)
    out: dict[str | None, list[str]] = {}
    for (record, where), whats in by_field.items():
        listed = ", ".join(f"{what} ×{whats.count(what)}" if whats.count(what) > 1 else what
                           for what in dict.fromkeys(whats))
        out.setdefault(record, []).append(f"removed {listed} from {where or 'the answer'}")
    return out
