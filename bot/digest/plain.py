"""The plain register of a digest entry, for patients and carers: nothing invented.

Every word added comes from the profile (the ``[glossary]``, the themes' ``plain_title``) or from
a field of the record (its overall status, countries and number of sites, why it stopped); every
quoted sentence is the record's own. What changes from the clinical entry:

- abbreviations the glossary lists are spelled out on their first use in the entry
  ("intravenous immunoglobulin (IVIG)"), unless the record already spells them out;
- a trial's status is said in words, with where it takes place when it is looking for people;
- the evidence quote is, when the chosen one is a run of statistics, a sentence of the record
  without statistics that names the same theme terms (it supports the theme as well).
"""

from __future__ import annotations

import re

from bot.digest.entries import clean_text
from bot.ranking.text import is_boilerplate, split_sentences, strip_section_label
from bot.store import loads

# An overall status in words: what it means for someone who might take part.
STATUS_WORDS = {
    "RECRUITING": "Recruiting — looking for participants",
    "NOT_YET_RECRUITING": "Not yet recruiting — will look for participants soon",
    "ENROLLING_BY_INVITATION": "Enrolling by invitation — only people the study team invites can take part",
    "ACTIVE_NOT_RECRUITING": "Active, not recruiting — under way, no longer taking new participants",
    "COMPLETED": "Completed — the study has ended",
    "WITHDRAWN": "Withdrawn — stopped before anyone took part",
    "TERMINATED": "Terminated — stopped early, after it had started",
    "SUSPENDED": "Suspended — paused for now",
    "UNKNOWN": "Status unknown — the record has not been confirmed for over two years",
    "AVAILABLE": "Available — treatment offered outside a trial (expanded access)",
    "NO_LONGER_AVAILABLE": "No longer available — expanded access has ended",
    "TEMPORARILY_NOT_AVAILABLE": "Temporarily not available — expanded access is paused",
    "APPROVED_FOR_MARKETING": "Approved for marketing — the treatment is now approved",
    "WITHHELD": "Withheld — the registry does not show this study's details",
}
# Statuses under which a reader could still take part: these trials come first, with where.
OPEN = ("RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION", "AVAILABLE")
_STOPPED = ("WITHDRAWN", "TERMINATED", "SUSPENDED")
# Statistics a reader cannot use: p-values, confidence intervals, percentages, ±, "= 3.2", ratios.
_STATISTICS = re.compile(r"\b[pP]\s*[<=>≤≥]\s*0?\.\d|\d\s*%|±|\bCI\b|\b(?:OR|HR|RR|SD|IQR|SMD|AUC)\b\s*[=:,(]?\s*-?\d"
                         r"|[=<>≤≥]\s*-?\d")


def status_key(status: str) -> str:
    """'Active, not recruiting' / 'ACTIVE_NOT_RECRUITING' → 'ACTIVE_NOT_RECRUITING'."""
    return re.sub(r"[^A-Z]+", "_", (status or "").upper()).strip("_")


def status_words(extra: dict) -> str:
    """The trial's overall status in words; where it recruits (countries, number of sites) when a
    reader could take part; the reason given when it stopped. '' without a status."""
    key = status_key(extra.get("overall_status") or extra.get("status") or "")
    if not key:
        return ""
    words = STATUS_WORDS.get(key) or clean_text(key.replace("_", " ").capitalize())
    countries = [clean_text(c) for c in extra.get("countries") or [] if clean_text(c)]
    sites = extra.get("locations_count") if isinstance(extra.get("locations_count"), int) else 0
    if key in OPEN and countries:
        shown = ", ".join(countries[:6]) + (f" and {len(countries) - 6} more countries" if len(countries) > 6 else "")
        words += f" in {shown}" + (f" ({sites} sites)" if sites > 1 else "")
    elif key in OPEN and sites:
        words += f" ({sites} {'site' if sites == 1 else 'sites'})"
    why = clean_text(extra.get("why_stopped"))
    if key in _STOPPED and why:
        words += f". Reason given: {why}"
    return words


def is_open(entry: dict) -> bool:
    return status_key(entry.get("status") or "") in OPEN


def spell_out(text: str, glossary: dict[str, str], seen: set[str]) -> str:
    """``text`` with the first use of each glossary abbreviation not yet in ``seen`` written
    "spelled out (ABBR)" (capitalised where it starts a sentence); an abbreviation the text
    already spells out is left alone."""
    for abbreviation, meaning in glossary.items():
        if abbreviation in seen or abbreviation not in text:
            continue
        pattern = re.compile(r"(?<![\w-])" + re.escape(abbreviation) + r"(?![\w-])")
        match = pattern.search(text)
        if not match:
            continue
        seen.add(abbreviation)
        if meaning.lower() in text.lower():
            continue  # the record says it already
        if not text[:match.start()].rstrip() or text[:match.start()].rstrip().endswith((".", ":", "?", "!")):
            meaning = meaning[:1].upper() + meaning[1:]  # it starts the title or a sentence
        text = text[:match.start()] + f"{meaning} ({abbreviation})" + text[match.end():]
    return text


def has_statistics(sentence: str) -> bool:
    return bool(_STATISTICS.search(sentence or ""))


def plain_sentence(item: dict, sentence: str, terms: list[str]) -> str:
    """The evidence sentence, or — when it is full of statistics — the record's first sentence
    without any that names as many of the same theme terms (none: the sentence stays)."""
    if not sentence or not has_statistics(sentence) or not terms:
        return sentence
    patterns = [re.compile(r"(?<!\w)" + re.escape(t), re.IGNORECASE) for t in terms if t]
    wanted = sum(1 for p in patterns if p.search(sentence))
    if not wanted:
        return sentence
    for candidate in split_sentences(item.get("abstract")):
        text = clean_text(strip_section_label(candidate))
        if (len(text) >= 40 and not is_boilerplate(candidate) and not has_statistics(text)
                and sum(1 for p in patterns if p.search(text)) >= wanted):
            return text
    return sentence


def plain_entry(entry: dict, item: dict, glossary: dict[str, str]) -> dict:
    """A copy of a (clinical) entry in the plain register (see the module docstring)."""
    plain = dict(entry)
    seen: set[str] = set()
    plain["title"] = spell_out(entry["title"], glossary, seen)
    sentence = plain_sentence(item, entry.get("sentence") or "", entry.get("terms") or [])
    plain["sentence"] = spell_out(sentence, glossary, seen) if sentence else ""
    if entry.get("kind") == "trial":
        extra = loads(item.get("extra"), {}) if isinstance(item.get("extra"), str) else (item.get("extra") or {})
        plain["status_words"] = status_words(extra or {})
    return plain
