"""Render a built digest to a subject, HTML and plain text, and wrap it as an e-mail.

Rendering is a pure function of the digest data (plus the unsubscribe details): the same data
always gives the same message, so a message retried by the outbox is the one first queued.
HTML templates autoescape every value; the text template gets values already cleaned of control
characters by ``bot.digest.entries``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from email.header import Header
from email.policy import compat32
from email.message import Message
from dataclasses import dataclass
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache
from urllib.parse import quote

from bot.dates import parse_day, parse_timestamp

import jinja2
from markupsafe import Markup

from bot.digest.entries import clean_text, safe_url
from bot.digest.schedule import first_day
from bot.digest.tokens import make_feedback_token, make_token, secret_for
from bot.sources.markdown import to_html
from bot.clock import now_iso

# Headers folded only past RFC 5322's hard limit: a folded List-Unsubscribe (long signed URLs)
# trips up some one-click implementations. Bodies are encoded in short lines regardless.
_POLICY = compat32.clone(max_line_length=998, linesep="\r\n")
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


# Inline styles for a record's markdown in a mail: a browser's default margins and 40px list indent
# are too much inside an item on a phone.
_MARKDOWN_STYLES = {"p": "margin:0 0 6px;", "ul": "margin:0 0 6px;padding-left:20px;",
                    "ol": "margin:0 0 6px;padding-left:24px;"}


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.digest", "templates"),
        # .html/.xml/.atom escaped; the .txt templates are plain text (nothing to escape)
        autoescape=jinja2.select_autoescape(["html", "xml", "atom"], default_for_string=True),
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        auto_reload=False)  # templates ship with the package: no stat() per render
    env.filters["safe_url"] = lambda value: safe_url(value) or ""
    env.filters["markdown"] = markdown_filter(_MARKDOWN_STYLES, "background:#dbeafe;")
    return env


def markdown_filter(styles: dict[str, str] | None = None, mark_style: str = ""):
    """The ``markdown`` template filter: a record's markdown (a trial's summary) as the HTML it
    means, escaped, no raw HTML passing (``mark``: the item's quote, highlighted where the summary
    says it). A mail gets inline ``styles``; a web page (no inline styles) its style sheet's."""
    return lambda value, mark=None: Markup(to_html(value, styles=styles, mark=mark, mark_style=mark_style))


def period_label(start: str, end: str) -> str:
    """'16–23 Nov 2026', '28 Oct – 3 Nov 2026', '28 Dec 2025 – 3 Jan 2026', '23 Nov 2026' (one day:
    a daily digest)."""
    a, b = parse_day(start), parse_day(end)
    if a == b:
        return f"{b.day} {_MONTHS[b.month - 1]} {b.year}"
    if a.year != b.year:
        return f"{a.day} {_MONTHS[a.month - 1]} {a.year} – {b.day} {_MONTHS[b.month - 1]} {b.year}"
    if a.month != b.month:
        return f"{a.day} {_MONTHS[a.month - 1]} – {b.day} {_MONTHS[b.month - 1]} {b.year}"
    return f"{a.day}–{b.day} {_MONTHS[b.month - 1]} {b.year}"


def covered_period(period_start: str, period_end: str) -> str:
    """The days a digest covers, as its header, subject and archive say them: '17–23 Nov 2026' for
    a period from 16 Nov 06:00 to 23 Nov (``first_day``: what it holds is dated from the 17th)."""
    return period_label(first_day(period_start), period_end)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary_line(overview: dict) -> str:
    parts = [_plural(overview[key], words) for key, words in (("papers", "new paper"), ("trials", "new trial"),
             ("changes", "trial change"), ("notices", "correction notice")) if overview[key]]
    return ", ".join(parts) if parts else "nothing new"


def subject_for(data: dict) -> str:
    """'SPS digest — 3 new papers, 1 trial change (16–23 Nov 2026)'."""
    return clean_text(f"{data['slug'].upper()} digest — {summary_line(data['overview'])} "
                      f"({covered_period(data['period_start'], data['period_end'])})")


# Where an item's per-subscriber feedback links go. The item itself is drawn once per build run
# and shared by every subscriber (see _item_renderers); each subscriber's links are put in its slot.
FEEDBACK_SLOT_HTML = "<!--spsbot:feedback-->"
FEEDBACK_SLOT_TEXT = "@@spsbot:feedback@@\n"


@dataclass
class SubscriberLinks:
    """The web front's links in one subscriber's digest: preferences, and per item feedback.
    Built per render, never stored (it holds the signing secret)."""

    base: str
    preferences: str
    subscriber_id: int
    email: str
    secret: bytes
    now: str | None = None

    def feedback(self, item_id: str) -> dict:
        token = quote(make_feedback_token(self.secret, self.subscriber_id, self.email, item_id, self.now), safe="")
        page = f"{self.base}/feedback?token={token}"
        return {"page": page, "relevant": f"{page}&vote=relevant", "irrelevant": f"{page}&vote=irrelevant"}


def subscriber_links(db, config, subscriber: dict, now: str | None = None) -> SubscriberLinks | None:
    """Links to the web front for ``subscriber`` (None when ``[web] base_url`` is not set)."""
    base = safe_url((config.web or {}).get("base_url") or "")
    if not base:
        return None
    secret = secret_for(db)
    token = make_token(secret, subscriber["id"], subscriber["email"], now, purpose="preferences")
    base = base.rstrip("/")
    return SubscriberLinks(base=base, preferences=f"{base}/preferences?token={quote(token, safe='')}",
                           subscriber_id=subscriber["id"], email=subscriber["email"], secret=secret, now=now)


# Stand-ins for the feedback URLs: the links' markup is drawn once, then each item's URLs go in.
_FEEDBACK_STANDINS = {"relevant": "https://feedback.invalid/relevant", "irrelevant": "https://feedback.invalid/irrelevant",
                      "page": "https://feedback.invalid/page"}


def _with_feedback(draw_html, draw_text, links: SubscriberLinks | None):
    """The item renderers with the subscriber's feedback links in the item's slot (or none).

    The links' templates are drawn once with stand-in URLs and each item's signed URLs are put in
    by string replacement (escaped for HTML): a thousand subscribers × 20 items are otherwise
    20,000 template calls per run."""
    env = environment()
    html_shape = str(env.get_template("_feedback.html").module.links(_FEEDBACK_STANDINS))
    text_shape = str(env.get_template("_feedback.txt").module.links(_FEEDBACK_STANDINS))

    def fill(shape: str, urls: dict, escape) -> str:
        for key, standin in _FEEDBACK_STANDINS.items():
            shape = shape.replace(standin, escape(urls[key]))
        return shape

    def html(entry):
        links_html = fill(html_shape, links.feedback(entry["key"]), lambda u: str(Markup.escape(u))) if links else ""
        return Markup(str(draw_html(entry)).replace(FEEDBACK_SLOT_HTML, links_html))

    def text(entry):
        links_text = fill(text_shape, links.feedback(entry["key"]), str) if links else ""
        return str(draw_text(entry)).replace(FEEDBACK_SLOT_TEXT, links_text)
    return html, text


def _item_renderers(cache: dict | None, links: SubscriberLinks | None = None):
    """Functions the templates call to draw one entry; with ``cache``, each distinct entry is
    drawn once per build run (a thousand subscribers mostly share the same items)."""
    env = environment()
    html_macro = env.get_template("_item.html").module.item
    text_macro = env.get_template("_item.txt").module.item
    if cache is None:
        return _with_feedback(html_macro, text_macro, links)

    def key(entry):  # the item, plus what varies with the section and the register
        return (entry["key"], entry["title"], entry["sentence"], entry.get("status_words"),
                tuple(link["nct_id"] for link in entry["trial_links"]))

    def cached(kind, macro):
        def draw(entry):
            k = (kind, *key(entry))
            if k not in cache:
                cache[k] = macro(entry)
            return cache[k]
        return draw
    return _with_feedback(cached("html", html_macro), cached("text", text_macro), links)


def render_digest(data: dict, config, unsubscribe: dict | None, cache: dict | None = None,
                  links: SubscriberLinks | None = None) -> tuple[str, str, str]:
    """(subject, html, text) for a built digest. ``unsubscribe``: see ``unsubscribe_info``;
    ``cache``: a dict kept for one build run (see ``_item_renderers``); ``links``: the web
    front's preferences and feedback links for this subscriber (``subscriber_links``)."""
    env = environment()
    item_html, item_text = _item_renderers(cache, links)
    titles = theme_titles(config, plain=data.get("style") == "plain")
    subscriber = data.get("subscriber") or {}
    context = {
        "d": data, "o": data["overview"], "subject": subject_for(data),
        "period": covered_period(data["period_start"], data["period_end"]), "summary": _summary_sentence(data),
        "period_days": int((config.digest or {}).get("period_days") or 7), "unsubscribe": unsubscribe,
        "theme_titles": [titles.get(t, t) for t in (subscriber.get("themes") or [])], "archive_nav": False,
        "preferences_url": links.preferences if links else None, "web_url": links.base if links else None,
        "archive_url": past_issues_link(config, links.base if links else None),
    }
    html = env.get_template("digest.html").render(context, item=item_html)
    return context["subject"], html, env.get_template("digest.txt").render(context, item=item_text)


def theme_titles(config, plain: bool = False) -> dict[str, str]:
    """Theme name → its heading: the clinical title, or in a plain-style digest the plain one."""
    return {t.name: (plain and t.plain_title) or t.title or t.name for t in config.themes}


def render_archive_page(data: dict, config) -> str:
    """The public HTML page of an archive issue (no subscriber, a link back to the index)."""
    env = environment()
    context = {"d": data, "o": data["overview"], "subject": subject_for(data),
               "period": covered_period(data["period_start"], data["period_end"]), "summary": _summary_sentence(data),
               "period_days": int((config.digest or {}).get("period_days") or 7), "unsubscribe": None,
               "theme_titles": [], "archive_nav": True, "preferences_url": None,
               "web_url": None, "archive_url": None}  # (the archive's own pages link back to its index)
    return env.get_template("digest.html").render(context, item=_item_renderers(None)[0])  # (no feedback links)


def archive_link(config) -> str | None:
    """The static archive's address (``[digest] archive_url``, where ``spsbot archive build``'s
    folder is published), or None."""
    return safe_url((config.digest or {}).get("archive_url") or "")


def past_issues_link(config, web_url: str | None) -> str | None:
    """Where a subscriber finds past issues: the web front's archive when it runs, else the static
    archive, else None (then the e-mail names no archive, and never a command they do not have)."""
    if web_url and safe_url(web_url):
        return safe_url(web_url.rstrip("/") + "/#archive")
    return archive_link(config)


def _summary_sentence(data: dict) -> str:
    line = summary_line(data["overview"])
    return "Nothing new this period." if line == "nothing new" else f"This period: {line}."


def unsubscribe_info(db, config, subscriber: dict, now: str | None = None) -> dict:
    """The signed token and where to use it: an https one-click URL and/or a mailto address.

    The URL is ``[email].unsubscribe_url``, else ``[web] base_url`` + ``/unsubscribe``. Without a
    URL and ``unsubscribe_mailto`` the mailto falls back to the sender's address (a human or a
    mail rule then runs ``spsbot unsubscribe TOKEN``).
    """
    email_cfg = config.email or {}
    token = make_token(secret_for(db), subscriber["id"], subscriber["email"], now)
    web_base = safe_url((config.web or {}).get("base_url") or "")
    # [email] unsubscribe_url wins (deployments that predate the web front); else the web front's page
    base = safe_url(email_cfg.get("unsubscribe_url") or "") or (web_base.rstrip("/") + "/unsubscribe" if web_base
                                                                 else None)
    url = f"{base}{'&' if '?' in base else '?'}token={quote(token)}" if base else None
    mailto_address = (email_cfg.get("unsubscribe_mailto") or parseaddr(email_cfg.get("from") or "")[1] or "").strip()
    mailto = f"mailto:{mailto_address}?subject={quote('unsubscribe ' + token)}" if mailto_address else None
    return {"token": token, "url": url, "mailto": mailto, "mailto_address": mailto_address or None}


def build_message(*, subject: str, html: str, text: str, sender: str, to_email: str, to_name: str | None,
                  message_id: str, unsubscribe: dict | None, date: str | None = None,
                  list_id: str | None = None) -> bytes:
    """The e-mail as bytes ready for SMTP: multipart/alternative (text first, HTML preferred)
    with RFC 8058 headers, CRLF line ends.

    Headers go through the ``email`` package (RFC 2047 encoding of non-ASCII subjects and
    names); the two body parts are encoded directly (quoted-printable text, base64 HTML): the
    package's generator re-walks every line of every part and made sending a thousand digests
    several times slower than the SMTP conversation itself.
    """
    head = Message(policy=_POLICY)
    # RFC 2047 words of at most 75 characters, folded here (the policy folds nothing below 998)
    head["Subject"] = Header(clean_text(subject), "utf-8").encode(maxlinelen=76)
    head["From"] = _address_header(sender)
    head["To"] = _address("To", clean_text(to_name), to_email)
    head["Date"] = format_datetime(parse_timestamp(date or now_iso()))
    head["Message-ID"] = message_id
    if list_id:
        head["List-Id"] = _address_header(list_id, "List-Id")
    if unsubscribe:
        targets = [f"<{u}>" for u in (unsubscribe.get("url"), unsubscribe.get("mailto")) if u]
        if targets:
            head["List-Unsubscribe"] = ", ".join(targets)
        if unsubscribe.get("url"):  # RFC 8058 one-click needs an https URL to POST to
            head["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # "=_" cannot occur in quoted-printable or base64 output, so the boundary never collides.
    boundary = "=_spsbot_" + hashlib.sha1(message_id.encode("utf-8")).hexdigest()
    plain = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
    rich = base64.encodebytes(html.encode("utf-8")).replace(b"\n", b"\r\n")
    b = boundary.encode("ascii")
    assert head.as_bytes().endswith(b"\r\n\r\n")
    return b"".join([
        head.as_bytes()[:-2],  # the headers (CRLF), without the generator's closing blank line
        b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="', b, b'"\r\n\r\n',
        b"--", b, b"\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
        # the CRLF before a boundary belongs to the boundary: one more keeps the text's last line end
        plain, b"\r\n" if plain.endswith(b"\r\n") else b"\r\n\r\n",
        b"--", b, b"\r\nContent-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        rich, b"--", b, b"--\r\n"])


def _address_header(value: str, header: str = "From") -> str:
    """'Name <addr>' with a non-ASCII name encoded (RFC 2047); CR/LF never reach a header."""
    name, address = parseaddr(clean_text(value))
    return _address(header, name, address) if address else clean_text(value)


def _address(header: str, name: str | None, address: str) -> str:
    """'Name <addr>' for a header. A non-ASCII name becomes RFC 2047 encoded words of at most 75
    characters on folded lines of at most 76 (``formataddr(charset=…)`` makes one word of any
    length: a 200-emoji name gave a 1,096-character line that SMTP servers refuse)."""
    if not name:
        return address
    name = name[:256]  # a greeting, not a payload: no header line grows without bound
    if name.isascii():  # quoted as needed, folded at its spaces
        return Header(formataddr((name, address)), header_name=header).encode(maxlinelen=76)
    words = Header(name, "utf-8", header_name=header).encode(maxlinelen=76)
    last = words.rsplit("\n", 1)[-1]
    return words + ("\n " if len(last) + len(address) + 3 > 76 else " ") + f"<{address}>"
