"""Turn stored rows (items + scores, trial changes, links) into plain digest entries.

An entry is a JSON-able dict holding only display-ready, cleaned text: title, shortened
authors, journal and date, an evidence label, the explanation sentence copied verbatim from the
record, and http(s) links. Everything a template shows comes from here, already neutralised
(control characters and bidi overrides removed); the templates escape it.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlparse

from bot.links import doi_url, pubmed_url, trial_url
from bot.sources.markdown import excerpt, holds, to_text
from bot.store import loads

# Bidi embeddings/overrides/isolates can reverse how a line reads ("Trojan Source"): removed.
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

# PubMed publication types → the evidence label a reader scans for (most specific first).
_PUB_TYPE_LABELS = [
    ("Retracted Publication", "Retracted"), ("Retraction of Publication", "Retraction notice"),
    ("Published Erratum", "Erratum"), ("Erratum", "Erratum"),
    ("Randomized Controlled Trial", "RCT"), ("Meta-Analysis", "Meta-analysis"),
    ("Systematic Review", "Systematic review"), ("Practice Guideline", "Guideline"), ("Guideline", "Guideline"),
    ("Clinical Trial, Phase IV", "Phase 4 trial"), ("Clinical Trial, Phase III", "Phase 3 trial"),
    ("Clinical Trial, Phase II", "Phase 2 trial"), ("Clinical Trial, Phase I", "Phase 1 trial"),
    ("Clinical Trial", "Clinical trial"), ("Multicenter Study", "Multicentre study"),
    ("Observational Study", "Observational study"), ("Case Reports", "Case report"), ("Review", "Review"),
    ("Comparative Study", "Comparative study"), ("Letter", "Letter"), ("Editorial", "Editorial"),
    ("Comment", "Comment"), ("Preprint", "Preprint"),
]
# CommentsCorrections RefTypes on an item that point at a later retraction/correction of it.
CORRECTION_IN = {"RetractionIn": "retracted", "ErratumIn": "corrected",
                 "ExpressionOfConcernIn": "expression of concern",
                 "CorrectedandRepublishedIn": "corrected and republished",
                 "RetractedandRepublishedIn": "retracted and republished"}
# …and on a notice item, the RefTypes that point at the item it retracts or corrects.
CORRECTION_OF = {"RetractionOf": "retracted", "ErratumFor": "corrected",
                 "ExpressionOfConcernFor": "expression of concern",
                 "CorrectedandRepublishedFrom": "corrected and republished",
                 "RetractedandRepublishedFrom": "retracted and republished"}


def clean_text(value) -> str:
    """Text safe to place anywhere: no control characters (but newlines/tabs → spaces), no bidi
    overrides, whitespace collapsed."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    if text.isprintable():  # fast path: no Cc/Cf/Cs/Co/Cn characters (bidi controls are Cf)
        return " ".join(text.split())
    text = "".join(" " if c in "\r\n\t" else c for c in text
                   if c in "\r\n\t" or (c not in _BIDI and unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co")))
    return re.sub(r"\s+", " ", text).strip()


def clean_lines(text: str) -> str:
    """``clean_text`` on each line: line breaks are kept (and blank lines between paragraphs)."""
    return "\n".join(clean_text(line) for line in str(text).splitlines()).strip("\n")


def _neutralised(text: str) -> str:
    """Text with its control and bidi characters removed, but its spaces and line breaks as they
    are (markdown's indentation nests lists)."""
    return "".join(c for c in unicodedata.normalize("NFC", text) if c in "\n\t" or (
        c not in _BIDI and unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co")))


# A trial's summary in the digest: its first paragraphs (whole blocks) up to about this many characters.
SUMMARY_CHARS = 600


def _extra(item: dict) -> dict:
    """The item's ``extra``, stored (JSON text) or just parsed (a dict)."""
    extra = loads(item.get("extra"), {}) if isinstance(item.get("extra"), str) else item.get("extra")
    return extra if isinstance(extra, dict) else {}


def trial_summary(item: dict) -> dict:
    """The start of a trial's brief summary: ``summary`` (plain text, lines kept), ``summary_md`` (the
    same blocks as the registry's markdown, which the HTML shows formatted) and ``summary_more``
    (blocks were left out). Empty when the record kept no markdown (stored before it did, or not a
    ClinicalTrials.gov record)."""
    source = _extra(item).get("summary_markdown")
    if item.get("kind") != "trial" or not isinstance(source, str) or not source.strip():
        return {}
    markdown, more = excerpt(_neutralised(source), SUMMARY_CHARS)
    return {"summary": clean_lines(to_text(markdown)), "summary_md": markdown, "summary_more": more}


def safe_url(value) -> str | None:
    """The URL if it is a plain http(s) URL with a host, else None (``javascript:`` never links)."""
    if not value or not isinstance(value, str):
        return None
    url = value.strip()
    if not url.isprintable() or " " in url or "\\" in url:  # controls, bidi (Cf), spaces
        return None
    parsed = urlparse(url)
    if parsed.scheme.lower() not in ("http", "https") or not parsed.netloc:
        return None
    return url


def short_authors(authors) -> str:
    """'Dalakas MC, Li M, … et al.' for long lists; all names for three or fewer."""
    names = [clean_text(a if isinstance(a, str) else (a or {}).get("name")) for a in (authors or [])]
    names = [n for n in names if n]
    if len(names) <= 3:
        return ", ".join(names)
    return ", ".join(names[:2]) + ", … et al."


def display_date(value) -> str:
    """'2026-11-17' → '17 Nov 2026', '2026-11' → 'Nov 2026', '2026' → '2026'."""
    text = (value or "")[:10]
    match = re.match(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", text)
    if not match:
        return clean_text(value)
    year, month, day = match.groups()
    if month and 1 <= int(month) <= 12:
        label = _MONTHS[int(month) - 1]
        return f"{int(day)} {label} {year}" if day else f"{label} {year}"
    return year


def date_upper(value) -> str:
    """The latest day a partial ISO date can mean, for window comparisons ('2026-11' → '2026-11-31')."""
    text = (value or "")[:10]
    if re.match(r"^\d{4}-\d{2}-\d{2}$", text):
        return text
    if re.match(r"^\d{4}-\d{2}$", text):
        return text + "-31"
    if re.match(r"^\d{4}$", text):
        return text + "-12-31"
    return ""


def evidence_label(item: dict) -> str:
    if item.get("kind") == "trial":
        extra = loads(item.get("extra"), {}) or {}
        phases = extra.get("phases") or extra.get("phase") or []
        phases = [phases] if isinstance(phases, str) else phases
        nice = [re.sub(r"^PHASE", "Phase ", str(p).upper()).replace("EARLY_", "Early ").strip() for p in phases
                if p and str(p).upper() not in ("NA", "N/A")]
        kind = clean_text(extra.get("study_type") or "").replace("_", " ").lower()
        if nice:
            return "/".join(nice) + " trial"
        return "Observational study" if kind == "observational" else "Clinical trial"
    types = set(loads(item.get("pub_types"), []) or [])
    for pub_type, label in _PUB_TYPE_LABELS:
        if pub_type in types:
            return label
    return "Article"


def item_links(item: dict) -> list[dict]:
    links = []
    if item.get("pmid"):
        links.append({"label": "PubMed", "url": pubmed_url(item["pmid"])})
    pmcid = str(item.get("pmcid") or "").strip().upper()
    if re.fullmatch(r"PMC\d+", pmcid):  # PubMed Central: the whole paper, free to read
        links.append({"label": "Free full text (PMC)", "url": f"https://pmc.ncbi.nlm.nih.gov/articles/{pmcid}/"})
    if item.get("doi"):
        links.append({"label": "DOI", "url": doi_url(item["doi"])})
    if item.get("nct_id"):
        links.append({"label": "ClinicalTrials.gov",
                      "url": trial_url(item["nct_id"])})
    own = safe_url(item.get("url"))
    if own and not any(own.rstrip("/") == link["url"].rstrip("/") for link in links):
        links.append({"label": "Source", "url": own})
    return [link for link in links if safe_url(link["url"])]


# Overall statuses by what they tell a reader: finished, still open, stopped early, or unknown.
_STATUS_TONES = {
    "completed": ("COMPLETED",),
    "open": ("RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING", "AVAILABLE",
             "APPROVED_FOR_MARKETING"),
    "stopped": ("WITHDRAWN", "TERMINATED", "SUSPENDED", "NO_LONGER_AVAILABLE", "TEMPORARILY_NOT_AVAILABLE",
                "WITHHELD"),
}


def status_tone(status: str) -> str:
    """"completed", "open", "stopped" or "unknown" for an overall status in any spelling
    ("Terminated", "ACTIVE_NOT_RECRUITING", "Active, not recruiting"): the digest's badge colour."""
    key = re.sub(r"[^A-Z]+", "_", (status or "").upper()).strip("_")
    return next((tone for tone, names in _STATUS_TONES.items() if key in names), "unknown")


def citation(item: dict) -> str:
    """Volume, issue and pages as PubMed's alerts give them: '271(3):1234-1240', '12:e0123'."""
    volume, issue, pages = (clean_text(_extra(item).get(k)) for k in ("volume", "issue", "pages"))
    text = volume + (f"({issue})" if issue else "")
    return f"{text}:{pages}" if text and pages else (text or pages)


def trial_status(item: dict) -> str:
    extra = loads(item.get("extra"), {}) or {}
    return humanize_value(extra.get("overall_status") or extra.get("status") or "")


def humanize_value(value) -> str:
    """'ACTIVE_NOT_RECRUITING' → 'Active, not recruiting'; other values cleaned as they are."""
    text = clean_text(value)
    if re.fullmatch(r"[A-Z][A-Z0-9_]+", text):
        special = {"ACTIVE_NOT_RECRUITING": "Active, not recruiting", "NOT_YET_RECRUITING": "Not yet recruiting",
                   "ENROLLING_BY_INVITATION": "Enrolling by invitation"}
        return special.get(text, text.replace("_", " ").capitalize())
    return text


def make_entry(item: dict, theme: str | None = None) -> dict:
    """A display entry for an item row joined with its score columns."""
    evidence = loads(item.get("evidence"), {}) or {}
    chosen = evidence.get(theme) if theme else None
    if not chosen and evidence:
        chosen = next(iter(evidence.values()))
    sentence = clean_text((chosen or {}).get("sentence")) if isinstance(chosen, dict) else ""
    terms = [clean_text(t) for t in ((chosen or {}).get("terms") or [])] if isinstance(chosen, dict) else []
    sources = loads(item.get("sources"), []) or []
    summary = trial_summary(item)
    if summary and sentence and holds(summary["summary_md"], sentence):
        summary["summary_has_sentence"] = True  # the quote is marked in the summary shown, not said twice
    return summary | {
        "key": item["id"], "kind": item.get("kind") or "paper", "title": clean_text(item.get("title")) or item["id"],
        "authors": short_authors(loads(item.get("authors"), [])), "journal": clean_text(item.get("journal")),
        "date": display_date(item.get("pub_date") or item.get("entrez_date")),
        "label": evidence_label(item), "sentence": sentence, "terms": [t for t in terms if t],
        "why": clean_text(item.get("why")), "links": item_links(item),
        "status": trial_status(item) if item.get("kind") == "trial" else "",
        "status_tone": status_tone(trial_status(item)) if item.get("kind") == "trial" else "",
        "citation": citation(item) if item.get("kind") != "trial" else "",
        "nct_id": clean_text(item.get("nct_id")), "relevance": round(float(item.get("relevance") or 0), 3),
        "sources": [clean_text(s) for s in sources], "trial_links": [],
    }


def item_dates(item: dict) -> list[tuple[str, str]]:
    """The (earliest, latest) day each of the item's dates can mean: the create date (the day it
    entered PubMed, or a trial was first posted), the Entrez date and the publication date (a
    month-level "2026-11" spans the month). A year-only publication date is too vague to put a
    back-catalogue paper in this week: used only when nothing else is known, and then the
    first-seen day stands in."""
    spans = []
    for value in (item.get("create_date"), item.get("entrez_date"), item.get("pub_date")):
        text = (value or "")[:10]
        if len(text) >= 7 and date_upper(text):
            spans.append((text if len(text) == 10 else text + "-01", date_upper(text)))
    if not spans:
        seen = (item.get("first_seen") or "")[:10]
        year = (item.get("pub_date") or "")[:4]
        # no usable date: first seen stands in, unless a year says it is older than that
        if seen and (not year.isdigit() or year >= seen[:4]):
            spans.append((seen, seen))
    return spans


def in_window(item: dict, start_day: str, end_day: str) -> bool:
    """True when one of the item's dates falls between the two days (inclusive, ISO dates).

    Either date counts: a paper indexed this week whose print issue is dated next month is news
    now, and so is one published this week but indexed late.
    """
    return any(low <= end_day and high >= start_day for low, high in item.get("_dates") or item_dates(item))
