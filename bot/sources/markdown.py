"""Markdown from a source (ClinicalTrials.gov API v2 "markup" fields) as plain text and as safe HTML.

The v2 API returns its rich-text fields (brief summary, detailed description, eligibility criteria,
why stopped …; type ``markup`` in its data model) as CommonMark, so a registry's
``glioma [rHGG]`` arrives as ``glioma \\[rHGG\\]`` and its bullets as ``* …`` lines. One parser,
markdown-it-py (CommonMark, the API's own flavour), reads it for both uses:

- ``to_text``: what the text says — escapes and entities resolved, emphasis dropped, each
  paragraph, heading and list item on its own line (blank lines between blocks, ``- `` / ``1. ``
  before items) — for ranking, search, the digest's text part and exports;
- ``to_html``: what it looks like — lists as lists, emphasis as emphasis — with raw HTML shown as
  the text it is (never passed through), images as their alt text (a mail never loads a remote
  image from a record), and links only to http(s) or mailto addresses;
- ``excerpt``: its first whole blocks, for a digest that shows the start of a long text;
- ``holds``/``to_html(mark=…)``: whether a quote lies in one run of its text, and that run marked.

API data model: https://clinicaltrials.gov/data-api/about-api/study-data-structure
"""

from __future__ import annotations

import html

from markdown_it import MarkdownIt
from markdown_it.token import Token

# `breaks`: a line break the registrant typed is kept (it is a new line on the registry's form);
# `html` off: tags in a record are text (`<5 years` stays `<5 years`), never markup.
_MD = MarkdownIt("commonmark", {"html": False, "breaks": True})
_MD.validateLink = lambda url: url.strip().lower().startswith(("http://", "https://", "mailto:"))
_MD.add_render_rule("image", lambda self, tokens, idx, options, env: html.escape(tokens[idx].content))


def to_html(markdown: str | None, styles: dict[str, str] | None = None, mark: str | None = None,
            mark_style: str = "") -> str:
    """The text as HTML (a fragment of <p>, <ul>/<ol>, <em>, <strong>, <a href="http…">, <code>…);
    everything that is not markdown markup is escaped. ``styles``: an inline ``style`` per tag
    (``{"p": "margin:0"}``), for mail clients that read no style sheet; ``mark``: a piece of the
    text to wrap in ``<span style="{mark_style}">`` (its first place, when ``holds`` finds it), or
    in ``<mark>`` without a ``mark_style`` (a page whose style sheet says how it looks)."""
    tokens = _MD.parse(markdown or "")
    for token in tokens:
        if token.nesting == 1 and token.tag in (styles or {}):
            token.attrSet("style", styles[token.tag])
    found = _find(tokens, mark)
    if found:
        inline, index = found
        text = inline.children[index].content
        start = text.index(mark)
        opening, closing = (f'<span style="{html.escape(mark_style)}">', "</span>") if mark_style \
            else ("<mark>", "</mark>")
        inline.children[index:index + 1] = [
            _token("text", text[:start]), _token("html_inline", opening),
            _token("text", mark), _token("html_inline", closing), _token("text", text[start + len(mark):])]
    return _MD.renderer.render(tokens, _MD.options, {}).strip()


def holds(markdown: str | None, text: str | None) -> bool:
    """Whether ``text`` lies in one run of the markdown's plain text (no markup inside it), so
    ``to_html(…, mark=text)`` can mark it."""
    return _find(_MD.parse(markdown or ""), text) is not None


def _find(tokens: list[Token], text: str | None) -> tuple[Token, int] | None:
    for token in tokens if text else []:
        for index, child in enumerate(token.children or []):
            if child.type == "text" and text in child.content:
                return token, index
    return None


def _token(kind: str, content: str) -> Token:
    return Token(kind, "", 0, content=content)


def to_text(markdown: str | None) -> str:
    """The text without its markup: blocks separated by a blank line, list items one per line."""
    lines: list[str] = []
    lists: list[list[int | None]] = []  # per open list: [next number] (None for bullets)
    prefix, gap = "", False
    for token in _MD.parse(markdown or ""):
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            start = token.attrGet("start") if kind == "ordered_list_open" else None
            lists.append([int(start) if start is not None else (1 if kind == "ordered_list_open" else None)])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            gap = not lists
        elif kind == "list_item_open":
            number = lists[-1][0]
            prefix = "  " * (len(lists) - 1) + ("- " if number is None else f"{number}. ")
            if number is not None:
                lists[-1][0] = number + 1
        elif kind in ("inline", "code_block", "fence"):
            text = _inline_text(token) if kind == "inline" else token.content.rstrip("\n")
            if gap and lines:
                lines.append("")
            lines.extend((prefix + line) if i == 0 else line for i, line in enumerate(text.split("\n")))
            prefix, gap = "", not lists
    return "\n".join(lines).strip()


def _inline_text(token: Token) -> str:
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline", "image"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
    return "".join(parts)


def excerpt(markdown: str | None, chars: int) -> tuple[str, bool]:
    """(the markdown of the text's first top-level blocks whose plain text fits in ``chars`` — at
    least one block —, whether blocks were left out). Cut between blocks, so it is still markdown."""
    source = (markdown or "").replace("\r\n", "\n").replace("\r", "\n")  # as the parser counts lines
    lines = source.split("\n")
    blocks = [t.map for t in _MD.parse(source) if t.level == 0 and t.map and t.nesting >= 0]
    end, used = (blocks[0][1] if blocks else len(lines)), 0
    for start, stop in blocks:
        used += len(to_text("\n".join(lines[start:stop]))) + 2  # (+ the blank line between blocks)
        if used - 2 > chars and stop > end:
            break
        end = stop
    if end >= len(lines) or not "\n".join(lines[end:]).strip():
        return source.strip(), False
    return "\n".join(lines[:end]).strip(), True
