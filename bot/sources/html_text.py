"""HTML → the text a reader sees, with the standard library's HTML parser (never a regex).

A pattern cannot tell markup from text: ``&lt;5 years`` becomes ``<5 years`` once decoded and a
tag-stripping pattern then eats it, and ``<!-- a > b -->`` leaves ``-->`` behind. html.parser
follows the HTML rules instead: a ``<`` not starting a tag is text, comments go whole, entities
are decoded exactly once. Block elements become a space (words either side stay apart); inline
ones (``<i>``, ``<sub>``) vanish without one, so ``H<sub>2</sub>O`` stays ``H2O``.
"""

from __future__ import annotations

from html.parser import HTMLParser

BLOCK_ELEMENTS = frozenset({
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "div", "dl", "dt",
    "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
    "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"})


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)

    def handle_starttag(self, tag, attrs):
        if tag in BLOCK_ELEMENTS:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in BLOCK_ELEMENTS:
            self.parts.append(" ")


def html_to_text(markup: str) -> str:
    """The text of an HTML fragment, whitespace collapsed to single spaces."""
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return " ".join("".join(parser.parts).split())
