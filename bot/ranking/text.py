"""Text helpers for the ranker: verbatim sentences, term matching, publication-type buckets.

Everything here is plain string work (no model), so it is cheap and easy to test.
"""

from __future__ import annotations

import functools
import os
import re

# A sentence ends at . ! ? followed by space and a capital/digit/bracket, or at an excerpt cut
# marker "[...]"; abbreviations like "e.g. the" (lower-case after) do not end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\s*\[(?:\.\.\.|…)\]\s*")
# A line ends a sentence too: a list item or a heading has no full stop (a trial's criteria, the
# "Conditions: …" line a trial's text gets), and a quote must not run one line into the next. A
# bullet before an item ("- ", "* ", "•") is not part of what it says.
_LIST_MARK = re.compile(r"^[-*•]\s+")
_MIN_SENTENCE_CHARS = 12
_MAX_SENTENCES = 40  # a very long record (a trial's full description) keeps its first 40


def split_sentences(text: str | None) -> list[str]:
    """Sentences of ``text`` as verbatim substrings (stripped), in order; each line is split on its
    own."""
    if not text:
        return []
    sentences = []
    for line in text.split("\n"):
        for part in _SENTENCE_END.split(_LIST_MARK.sub("", line.strip())):
            part = (part or "").strip()
            if len(part) >= _MIN_SENTENCE_CHARS or (part and not sentences):
                sentences.append(part)
    return sentences[:_MAX_SENTENCES]


# A structured abstract's section labels arrive as "BACKGROUND: …" lines (bot.sources.pubmed);
# some abstracts write them in title case inline ("Aim: …"). A label is not evidence.
_SECTION_LABEL = re.compile(
    r"^(?:[A-Z][A-Z ,&/-]{3,60}|(?:Background|Objectives?|Aims?|Purpose|Introduction|Methods?|Design|Setting|"
    r"Participants|Results?|Findings|Conclusions?|Interpretation|Discussion|Importance|Observations?|"
    r"Significance|Case (?:presentation|report|description)s?)(?: and [A-Za-z ]{3,30})?)\s*:\s+")
# Journal boilerplate that abstracts carry verbatim: copyright and licence lines, publisher names,
# funding, conflicts, registration numbers. Never evidence for a theme.
_BOILERPLATE = re.compile(
    r"©|\(c\)\s*(?:19|20)\d\d|\bcopyright\b|all rights reserved|\bpublished by (?:the )?(?-i:[A-Z])|"
    r"\bon behalf of (?:the )?(?-i:[A-Z])|"
    r"\blicen[cs]ee\b|creative commons|open[ -]access article|distributed under the terms|"
    r"protected by copyright|wiley periodicals|\bthe authors?\(s\)|^(?:funding|trial registration|"
    r"registration|conflicts? of interest|competing interests|disclosures?|level of evidence|"
    r"supplementary (?:material|data|information))\b", re.IGNORECASE)


def strip_section_label(sentence: str) -> str:
    """The sentence without a leading section label ("BACKGROUND: ", "Methods: "); still a
    verbatim substring of the record."""
    return _SECTION_LABEL.sub("", sentence, count=1)


def is_boilerplate(sentence: str) -> bool:
    """Copyright, licence, publisher, funding or registration text rather than content."""
    return bool(_BOILERPLATE.search(sentence) or _BOILERPLATE.search(strip_section_label(sentence)))


# How much of a record's text is embedded, in characters (0 = all of it). Reading every
# sentence costs ~2.3x a plain whole-text encode (which truncates at 256 tokens); a budget of
# 1100 (~ what that encode reads) costs about the same as it, but cross-validated mean theme AP
# drops from 0.894 to 0.886 (multidisciplinary 0.82 -> 0.76; bench/ranking.py). Quality wins
# by default; env SPSBOT_EMBED_BUDGET trades it for speed. Within a budget, sentences are taken
# alternately from the start and the end of the text (what was studied, what was found).
EMBED_BUDGET_CHARS = int(os.environ.get("SPSBOT_EMBED_BUDGET", "0"))


def record_sentences(record: dict, budget: int | None = None) -> list[str]:
    """What the embedder reads for a record: its title, then sentences of its text (in text
    order) from its beginning and its end, within ``budget`` characters (0 = all)."""
    budget = EMBED_BUDGET_CHARS if budget is None else budget
    title = (record.get("title") or "").strip()
    sentences = [s for s in split_sentences(record.get("text") or record.get("abstract") or "") if s != title]
    if budget and sum(map(len, sentences)) > budget:
        chosen, used = set(), 0
        left, right = 0, len(sentences) - 1
        take_left = True
        while left <= right:
            index = left if take_left else right
            if used + len(sentences[index]) > budget and chosen:
                break
            chosen.add(index)
            used += len(sentences[index])
            if take_left:
                left += 1
            else:
                right -= 1
            take_left = not take_left
        sentences = [s for i, s in enumerate(sentences) if i in chosen]
    return ([title] if title else []) + sentences or [""]


# Between a term's words: spaces or any dash ("Lambert-Eaton", "Lambert–Eaton" with an en dash,
# "stiff person"): publishers set the same name with different dashes.
WORD_GAP = r"[\s\-\u2010-\u2015\u2212]+"


def term_pattern(term: str) -> re.Pattern:
    """A case-insensitive pattern for a config term: word start always, word end unless the
    term is a stem (a term like "diagnos" or "immunosuppress" matches any ending)."""
    words = [re.escape(w) for w in re.split(WORD_GAP, term.strip()) if w]
    body = WORD_GAP.join(words)
    short_acronym = term.isupper() and len(term) <= 4
    tail = r"(?![a-z])" if short_acronym else ""
    if short_acronym:  # "EMG", "CSF", "HLA": case-sensitive so "hla" in a word never matches
        return re.compile(r"(?<![A-Za-z])" + body + tail)
    return re.compile(r"(?<![A-Za-z])" + body, re.IGNORECASE)


def acronym_pattern(acronym: str) -> re.Pattern:
    """A declared acronym of the topic: written with capitals ("MG", "NMOSD", "AChR") it is
    matched case-sensitively and as a whole word, never right after a number (a unit, as in the
    dose "150 MG"): "MG-ADL" counts, "mg/kg", "Mg2+" and "150 MG" do not; written in lower case
    it is matched like any term."""
    if acronym == acronym.lower():
        return term_pattern(acronym)
    body = WORD_GAP.join(re.escape(w) for w in re.split(WORD_GAP, acronym.strip()) if w)
    return re.compile(r"(?<![A-Za-z0-9])(?<!\d )" + body + r"(?![A-Za-z0-9])")


def find_terms(text: str, patterns: dict[str, re.Pattern]) -> list[str]:
    """The terms (keys of ``patterns``, made by ``term_pattern``) that occur in ``text``, in the
    order given."""
    text = text or ""
    folded = text.casefold()
    return [term for term, pattern in patterns.items()
            if _may_occur(term, pattern, text, folded) and pattern.search(text)]


def count_terms(text: str, patterns: dict[str, re.Pattern]) -> int:
    text = text or ""
    folded = text.casefold()
    return sum(len(pattern.findall(text)) for term, pattern in patterns.items()
               if _may_occur(term, pattern, text, folded))


# Term patterns start with a look-behind, which makes the regex engine try every position of the
# text; most terms are absent from most texts, so a plain substring test of the term's first word
# first skips most regex scans (term matching was ~40% of rank's CPU besides the model). The test
# never skips a real match: a case-insensitive match implies the case-folded texts contain it.
@functools.lru_cache(maxsize=4096)
def _probe(term: str, pattern: re.Pattern) -> tuple[str, bool]:
    """(the term's first word as the text must contain it, whether to look in the folded text).
    Worked out once per term: reading ``pattern.flags`` builds an enum object on every call."""
    words = [w for w in re.split(WORD_GAP, term.strip()) if w]
    word = words[0] if words else ""
    folded = bool(pattern.flags & re.IGNORECASE)
    return (word.casefold() if folded else word), folded


def _may_occur(term: str, pattern: re.Pattern, text: str, folded: str) -> bool:
    word, in_folded = _probe(term, pattern)
    return word in (folded if in_folded else text)


def query_phrases(query: str) -> list[str]:
    """Quoted phrases and tagged words of a PubMed query ("stiff person"[tiab] → stiff person)."""
    phrases = re.findall(r'"([^"]+)"\s*\[', query or "")
    phrases += re.findall(r"([A-Za-z][\w\-]*)\[tiab\]", query or "")
    seen, out = set(), []
    for phrase in phrases:
        key = phrase.lower().rstrip("*")
        if len(key) >= 3 and key not in seen:
            seen.add(key)
            out.append(phrase.rstrip("*"))
    return out


def query_names(query: str) -> list[str]:
    """The topic's names in a PubMed query: the phrases its top-level OR alternatives search on
    their own. What a query searches only AND-ed with something else is no name: in
    ``(GAD65 OR DPPX) AND (stiffness OR rigidity)`` neither "GAD65" nor "rigidity" alone means
    stiff person syndrome (a Parkinson's rigidity paper would name the topic). A filter by
    language, date, publication type, subset or journal restricts which records, not what they
    are about: ``(… OR …) AND english[la]`` keeps the names of the bracketed group."""
    names = []
    for alternative in _top_level(query or "", "OR"):
        inner = alternative.strip()
        if len(_top_level(inner, "NOT")) > 1:
            continue
        conjuncts = [c.strip() for c in _top_level(inner, "AND") if not _FILTER.fullmatch(c.strip())]
        if len(conjuncts) != 1:
            continue
        inner = conjuncts[0]
        if _bracketed(inner):
            names += query_names(inner[1:-1])
        else:
            names += query_phrases(inner)
    return list(dict.fromkeys(names))


# A query part that only filters (every term tagged with a metadata field): language, dates,
# publication type, subset, journal, author.
_FILTER_TAGS = r"la|lang|language|dp|pdat|edat|crdt|mhda|pt|ptyp|sb|filter|ta|jour|au|auth"
_FILTER = re.compile(r"\(*\s*(?:(?:\"[^\"]*\"|[\w\-:/*]+)\s*\[(?:" + _FILTER_TAGS + r")\]\s*(?:\bOR\b\s*)?)+\)*",
                     re.IGNORECASE)


def _bracketed(query: str) -> bool:
    """Whether all of ``query`` is one bracketed group: "(a OR b)", not "(a) OR (b)"."""
    if not query.startswith("("):
        return False
    depth = 0
    for i, char in enumerate(query):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return i == len(query) - 1
    return False


def _top_level(query: str, operator: str) -> list[str]:
    """``query`` split at ``operator`` where it stands outside brackets and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for match in re.finditer(r'"|\(|\)|\b' + operator + r'\b', query):
        token = match.group()
        if token == '"':
            quoted = not quoted
        elif not quoted and token in "()":
            depth += 1 if token == "(" else -1
        elif not quoted and depth == 0:
            parts.append(query[start:match.start()])
            start = match.end()
    return parts + [query[start:]]


# Publication types come in many spellings (PubMed's "Case Reports", a review team's "case
# report", a trial registry's "interventional"); buckets make them comparable.
PUB_TYPE_BUCKETS = {
    "case_report": ("case report", "case (", "letter"),
    "case_series": ("case series", "series"),
    "cohort": ("cohort", "observational", "registry", "multicenter", "comparative study", "epidemiolog"),
    "review": ("review", "meta-analysis", "guideline", "book", "chapter", "commentary", "editorial"),
    "trial": ("trial", "interventional", "rct", "crossover", "controlled"),
    "lab": ("experimental", "research support", "animal", "in vitro"),
    "abstract": ("conference", "congress", "abstract", "meeting"),
}


def pub_type_flags(pub_types, kind: str | None) -> list[float]:
    """One 0/1 flag per bucket (in PUB_TYPE_BUCKETS order), plus one for kind == trial."""
    joined = " | ".join(str(p).lower() for p in (pub_types or []))
    flags = [float(any(cue in joined for cue in cues)) for cues in PUB_TYPE_BUCKETS.values()]
    return flags + [float(kind == "trial")]
