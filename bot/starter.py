"""A starter profile for another disease: what ``spsbot init TOPIC`` writes.

The profile is valid as written (it loads, fetches and ranks) and says what to fill in: the
PubMed query (every name the literature uses), the phrases that describe the disease and its near
misses, and themes whose terms are the disease's own drugs and tests. It never inherits the SPS
themes (see ``bot.config._themes``).
"""

from __future__ import annotations

import json
import re

from bot.config import STARTER_DESCRIPTION, STARTER_EXAMPLES, STARTER_QUERY
from bot.ranking.weak import MESH_BROWSER, MIN_EACH

_SMALL_WORDS = {"of", "the", "and", "with", "in", "type", "syndrome", "disease", "disorder"}


def slug_for(topic: str) -> str:
    """A short label for subjects and the site: the initials of a name of several words
    ("Myasthenia gravis" → "mg", "Stiff person syndrome" → "sps"), else the word. Only a label:
    the ranker never looks for it (initials are often not the literature's abbreviation)."""
    words = re.findall(r"[A-Za-z0-9]+", re.sub(r"['’]s\b", "", topic))  # "Huntington's disease" → hd
    main = [w for w in words if w.lower() not in _SMALL_WORDS] or words
    if len(words) >= 2:
        initials = "".join(w[0] for w in (words if len(words) <= 5 else main)).lower()
        if 2 <= len(initials) <= 5:
            return initials
    return (main[0] if main else "topic").lower()[:20]


def split_name(topic: str) -> tuple[str, list[str]]:
    """The name and the abbreviation it gives in brackets, the way papers introduce one:
    "Neuromyelitis optica spectrum disorder (NMOSD)" → ("Neuromyelitis optica spectrum disorder", ["NMOSD"])."""
    name = " ".join(topic.split())
    match = re.fullmatch(r"(.+?)\s*\(\s*([A-Za-z0-9][A-Za-z0-9\-]{0,11})\s*\)", name)
    if match and any(c.isupper() for c in match.group(2)):
        return match.group(1), [match.group(2)]
    return name, []


def _toml(value: str) -> str:
    """A TOML string: a literal '…' when it can be (queries are full of double quotes)."""
    if "'" not in value and "\n" not in value:
        return f"'{value}'"
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _acronyms_line(name: str, acronyms: list[str]) -> str:
    if acronyms:
        return f"acronyms = [{', '.join(_toml(a) for a in acronyms)}]"
    return (f"acronyms = []   # TODO: the abbreviation the literature uses for {name}, if any, e.g. [\"MG\"]\n"
            f"# (not guessed from the initials: a wrong one scores unrelated papers as relevant)")


# What each part of the profile changes, as `spsbot init` says it (checked against the ranker by
# tests/test_another_disease.py: each key is in the written file and feeds what its line says).
# (what it feeds, the keys, what editing them changes)
PARTS = (
    ("names", ("[topic] name", "[topic] acronyms", "[topic] pubmed_query"),
     "the topic's names (the name, each acronym, each phrase its query searches on its own, not AND-ed): a record "
     "that never names the topic is never relevant, one naming it once in passing gets no credit for the name, "
     "and a name inside a negative does not count; acronyms in capitals match only in capitals"),
    ("phrases", ("[topic] name", "[topic] description", "[topic] examples"),
     "the phrases relevance compares a record with: its closest sentences, its title and the whole record"),
    ("negatives", ("[topic] negatives",),
     "near misses, compared like the phrases: a record closer to one of them than to the topic scores lower, "
     "and one called not relevant says which it is closest to (phrases only: nothing is fetched for them)"),
    ("mesh", ("[topic] mesh",),
     "NLM MeSH headings: a record indexed under one names the topic; stored PubMed records with one as a major "
     "topic are weak positives, records indexed without them weak negatives, on which rank states relevance's "
     f"precision and recall while there is no labelled seed (once there are {MIN_EACH} of each; look a heading "
     f"up at {MESH_BROWSER})"),
    ("theme phrases", ("[[themes]] description", "[[themes]] examples"),
     "each theme's phrases, compared like the topic's"),
    ("theme terms", ("[[themes]] include_terms",),
     "each theme's words: how many occur and how often (less those the topic's description and examples "
     "use, which every record about the disease names)"),
    ("label", ("[topic] slug",), "only a label in digest subjects and the site's name, never a scoring term"),
    ("fetch", ("[topic] ctgov_condition", "[topic] ctgov_terms", "[topic] feeds"),
     "what is fetched besides the PubMed query; they change no score"),
)


def what_edits_change() -> list[str]:
    """``PARTS`` as lines for the user: the keys, then what editing them changes."""
    return [f"{', '.join(keys)}: {text}" for _, keys, text in PARTS]


def starter_profile(topic: str, acronyms: list[str] | None = None) -> str:
    """The text of a starter profile for ``topic`` (see the module docstring), declaring
    ``acronyms`` (else those the name gives in brackets; else none, with a TODO)."""
    name, given = split_name(topic)
    acronyms = [a for a in (acronyms if acronyms is not None else given) if a.strip()]
    slug = re.sub(r"[^a-z0-9]+", "", acronyms[0].lower()) if acronyms else ""
    slug = slug or slug_for(name)
    # A double quote would end the PubMed phrase early; the query searches the name without it.
    query = STARTER_QUERY.format(name=name.replace('"', ""))
    return f'''# spsbot profile for {name}, written by `spsbot init`. Fill in what says TODO, then:
#   export SPSBOT_CONFIG=$PWD/<this file>
#   spsbot fetch && spsbot rank && spsbot label --review
# Every key is documented in the bundled SPS profile (bot/profiles/sps.toml). What you leave out
# keeps the bundled default, except the themes: this profile has only its own.

[topic]
name = {_toml(name)}
slug = {_toml(slug)}   # a label: the short name in subjects ("{slug.upper()} digest — …"); never a scoring term
# Abbreviations the ranker counts as naming the topic; written in capitals, they match only in capitals.
{_acronyms_line(name, acronyms)}
# TODO: one or two sentences on what {name} is: its other names, antibodies or genes, main signs.
description = {_toml(STARTER_DESCRIPTION.format(name=name))}
# TODO: check the MeSH heading NLM indexes {name} under at {MESH_BROWSER} (NMOSD's is
# "Neuromyelitis Optica"). Stored PubMed records with it as a major topic teach relevance what is
# about the topic, records indexed without it what is not (case and punctuation are ignored).
mesh = [{_toml(name)}]

# TODO: every name the literature uses (a query that misses half the names misses half the papers),
# plus its MeSH heading if it has one, e.g. "{name}"[mh]. Field tags: [tiab] title/abstract, [mh] MeSH.
# Careful with bare acronyms: [tiab] ignores case, so "MG"[tiab] also finds every "mg/kg".
pubmed_query = {_toml(query)}

ctgov_condition = {_toml(name)}
ctgov_terms = []     # extra free-text searches of ClinicalTrials.gov, each its own request
feeds = []           # RSS/Atom feeds: journal tables of contents, a saved PubMed search

# TODO: phrases a relevant paper would contain, and near misses that must stay out (another disease
# with the same antibody, a homonym). The relevance score compares every sentence with them.
examples = [
  {", ".join(_toml(e.format(name=name)) for e in STARTER_EXAMPLES)},
]
negatives = []       # TODO: e.g. ["another disease with the same antibody", "a homonym"]

# TODO: each theme's plain_title and plain_description below are everyday words for patients and carers
# (plain-style digests, the web front): make them fit your disease.
# TODO: abbreviations your literature uses, spelled out on first use in plain-style digests.
[glossary]
# IVIG = "intravenous immunoglobulin"

# Themes sort each digest into sections. These three fit any disease; give them your disease's
# words (drug names, tests) in include_terms, rename or delete them, or add your own.
# Until you label examples (`spsbot label --review`), themes and relevance come from these phrases
# and terms alone: see the README, "Another disease".

[[themes]]
name = "treatment"
title = "Treatment"
plain_title = "Treatments"
plain_description = "What was tried to treat it, and how well it worked."
description = "Treatment and its outcomes: drugs, immunotherapy, surgery, rehabilitation, dosing and side effects."
examples = ["treated with", "improved after treatment", "randomised controlled trial of"]
include_terms = []   # TODO: the drugs and procedures used in {name}

[[themes]]
name = "diagnosis"
title = "Diagnosis and biomarkers"
plain_title = "Tests and diagnosis"
plain_description = "How it is recognised: the tests, antibodies and scans doctors use, and its look-alikes."
description = "Diagnosis: criteria, tests, antibodies and other biomarkers, imaging, genetics, misdiagnosis."
examples = ["diagnostic criteria", "antibody testing", "misdiagnosed as"]
include_terms = ["diagnos", "biomarker", "criteria"]   # TODO: the tests used in {name}

[[themes]]
name = "cohorts"
title = "Registries and cohorts"
plain_title = "Studies of many patients"
plain_description = "Studies that follow groups of patients: how common it is and how it changes over time."
description = "Registries, natural-history studies, cohorts and case series, epidemiology."
examples = ["retrospective cohort of patients", "natural history study", "international registry"]
include_terms = ["registry", "cohort", "natural history", "incidence", "prevalence", "case series"]
'''

