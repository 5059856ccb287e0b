"""Medical text that markup handling must never touch: comparisons, p-values, ampersands, ≤/≥,
things that look like tags or entities. One list for every path's test (tests/test_medical_text.py
runs it through ClinicalTrials.gov, a feed and PubMed, the digest, the web pages and the CSV export).

Each sample names one word no other sample has (``query_word``), so a search can find it alone.
"""

from __future__ import annotations

import html
import re
import string
from html.parser import HTMLParser

SAMPLES = [
    "Mortality in children aged <5 years and adults >65 years",
    "eGFR <30 and age >70.",
    "Seizure frequency fell (p<0.05) with ≤3 doses & ≥2 weeks",
    "Glycated haemoglobin < 7% & BMI > 30 kg/m²",
    "Titres 1:100 & GAD65 >2000 IU/mL in n<10 (p<0.001)",
    "Baclofen <b>not a tag</b> & &amp; as written",
    "Stiffness ≤ 2 & spasms <3/day -> benzodiazepine <= 10 mg",
]


def query_word(sample: str) -> str:
    """The sample's longest word (letters only): each sample's differs from every other's."""
    return max(re.findall(r"[A-Za-z]+", sample), key=len)


def markdown_escaped(text: str) -> str:
    """``text`` as ClinicalTrials.gov v2 serves a markup field: ASCII punctuation backslash-escaped
    (``<5`` → ``\\<5``, ``&`` → ``\\&``), which CommonMark reads back as the character itself."""
    return "".join("\\" + c if c in string.punctuation else c for c in text)


class _TextNodes(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)


def text_nodes(markup: str) -> list[str]:
    """The text nodes of an HTML fragment or page, character references resolved once, nothing
    between them: the tests' own reading, independent of bot/sources/html_text.py."""
    reader = _TextNodes()
    reader.feed(markup)
    reader.close()
    return reader.parts


def visible_text(page: str) -> str:
    """What a browser shows of an HTML page (its text, references resolved, whitespace collapsed)."""
    return " ".join(" ".join(text_nodes(page)).split())


def assert_html_shows(page: str, sample: str) -> None:
    """``page`` shows ``sample`` exactly: as text (read back by a real HTML parser), escaped in
    the source, and never raw (a raw ``<5`` would be a tag to the browser)."""
    assert sample in visible_text(page), f"{sample!r} is not shown as it is"
    assert html.escape(sample, quote=False) in page, f"{sample!r} is not escaped as expected"
    if any(c in sample for c in "<>&"):
        assert sample not in page, f"{sample!r} appears unescaped"


def assert_link_says(page: str, url: str, sample: str) -> None:
    """A link to ``url`` in ``page`` says ``sample`` exactly (escaped once): that one item's title,
    not the same words of another item."""
    href = re.escape(html.escape(url))
    texts = re.findall(f'href="{href}"[^>]*>(.*?)</a>', page, re.DOTALL)
    assert html.escape(sample, quote=False) in texts, f"no link to {url} says {sample!r} (links say {texts!r})"


def text_entry(text: str, url: str) -> str:
    """The entry of a digest's text part (``* title`` and its lines) that links ``url``."""
    entries = [e for e in re.split(r"\n(?=\* )", text) if f"\n  {url}\n" in e + "\n"]
    assert len(entries) == 1, f"{len(entries)} entries link {url}"
    return entries[0]
