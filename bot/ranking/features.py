"""Hybrid features of a record, for the supervised layer and the unsupervised fallback.

For the topic and for each configured theme: sentence-level similarity to its description and
example phrases (best sentence, best two, the title, the whole record), counts of its terms
(the topic's names come from its PubMed query; themes have include/exclude terms), plus
publication-type buckets and the largest patient count the text names.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from bot.config import placeholders_warning
from bot.ranking.text import (WORD_GAP, acronym_pattern, count_terms, find_terms, is_boilerplate, pub_type_flags,
                              query_names, query_phrases, record_sentences, strip_section_label, term_pattern)
from bot.ranking.weak import heading_key, topic_headings

VectorsFn = Callable[[list[str]], np.ndarray]                  # texts, each on its own -> rows
PassagesFn = Callable[[list[list[str]]], list[np.ndarray]]     # records' sentences -> one matrix each


@dataclass
class Target:
    """What one score is about: the topic (relevance) or a theme."""

    name: str
    prototypes: list[str]                 # description + example phrases
    terms: dict = field(default_factory=dict)      # term -> compiled pattern
    exclude: dict = field(default_factory=dict)
    negatives: list[str] = field(default_factory=list)  # topic only: what it is not
    headings: frozenset = frozenset()     # topic only: its MeSH headings (``weak.heading_key``)
    proto_vectors: np.ndarray | None = None
    negative_vectors: np.ndarray | None = None


def build_targets(config) -> list[Target]:
    """The topic target ("relevance") then one target per theme, from the configuration."""
    topic = config.topic
    # The topic's names: its query's phrases, its name and the acronyms it declares. The slug is
    # only a label: 'mg' as a term found every "150 MG" dose.
    # One entry per name as the patterns match it ("Myasthenia Gravis"[mh] and "myasthenia gravis"[tiab]
    # are one name): a count of names or of their mentions must not count a spelling twice.
    names: dict[str, str] = {}
    for name in [*query_names(topic.pubmed_query), topic.name]:
        names.setdefault(re.sub(WORD_GAP, " ", name.casefold()), name)
    terms = {n: term_pattern(n) for n in names.values()}
    terms.update({a: acronym_pattern(a) for a in topic.acronyms if a.strip()})
    targets = [Target("relevance", [topic.name, topic.description, *topic.examples], terms=terms,
                      negatives=list(topic.negatives),
                      headings=frozenset(map(heading_key, topic_headings(config))))]
    described = " ".join([topic.name, topic.description, *topic.examples])
    for theme in config.themes:
        targets.append(Target(theme.name, [theme.description, *theme.examples],
                              terms=theme_terms(theme.include_terms, described),
                              exclude={t: term_pattern(t) for t in theme.exclude_terms}))
    return targets


def theme_terms(include_terms, described: str) -> dict[str, re.Pattern]:
    """A theme's terms as patterns, less those the topic's own description and examples use: they
    describe the disease itself (nearly every myasthenia gravis paper names AChR antibodies), so
    they are no evidence of the theme. A theme left with no other term keeps them."""
    patterns = {t: term_pattern(t) for t in include_terms}
    specific = {t: p for t, p in patterns.items() if not p.search(described)}
    return specific or patterns


def abbreviation_note(config) -> str | None:
    """One line when the profile's own description abbreviates the topic ("Myasthenia gravis (MG)")
    and ``acronyms`` does not declare it: the ranker does not take names from prose, so a record
    that writes only the abbreviation does not name the topic."""
    topic = config.topic
    match = re.search(re.escape(topic.name) + r"\s*\(\s*([A-Za-z0-9][A-Za-z0-9\-]{0,11})\s*[),;]",
                      topic.description, re.IGNORECASE)
    if not match or not any(c.isupper() for c in match.group(1)) or match.group(1) in topic.acronyms:
        return None
    abbreviation = match.group(1)
    return (f"the description abbreviates {topic.name} as {abbreviation}, which [topic] acronyms does not declare: "
            f"a record that writes only {abbreviation} does not name the topic (acronyms = [\"{abbreviation}\"] if "
            f"the literature uses it)")


def query_note(config) -> str | None:
    """One line when the PubMed query searches no phrase on its own (every one AND-ed with more
    than a filter, e.g. ``humans[mh]``): then only the topic's name and acronyms name it."""
    query = config.topic.pubmed_query
    if query_names(query) or not query_phrases(query):
        return None
    return (f"the PubMed query searches every phrase AND-ed with something else, so none names the topic on its "
            f"own: only {config.topic.name!r} and [topic] acronyms do (a filter by language, date, type or journal "
            f"is fine; give the names an OR alternative of their own to count them)")


def profile_warning(config) -> str | None:
    """What ``rank`` and ``status`` say about the profile itself, one line: placeholders left, an
    abbreviation the description uses but does not declare, a query that names nothing on its own."""
    notes = [placeholders_warning(config), abbreviation_note(config), query_note(config)]
    return "; ".join(filter(None, notes)) or None


def topic_mentions(text: str, target: Target) -> int:
    """How many places in ``text`` name the topic (its names and declared acronyms), leaving out
    a name inside one of its declared negatives ("myasthenic" in "Lambert-Eaton myasthenic
    syndrome" names another disease) and one that excludes patients: in a clause saying so
    ("patients with myasthenia gravis will be excluded") or in a trial's exclusion criteria."""
    if not text:
        return 0
    starts = {m.start() for pattern in target.terms.values() for m in pattern.finditer(text)}
    if starts:
        masked = [m.span() for n in target.negatives for m in term_pattern(n).finditer(text)]
        masked += [m.span() for m in _CLAUSE.finditer(text) if _EXCLUSION.search(m.group())]
        masked += [m.span() for m in _EXCLUSION_SECTION.finditer(text)]
        starts = {s for s in starts if not any(a <= s < b for a, b in masked)}
    return len(starts)


# A trial that excludes the topic's patients names it without being about it: in a clause that says
# so, or anywhere in its exclusion criteria (a list, one criterion per line or bullet).
_CLAUSE = re.compile(r"[^.;!?\n]+")
_EXCLUSION = re.compile(r"\bexclu|\bnot eligible|\bineligible", re.IGNORECASE)
_EXCLUSION_SECTION = re.compile(r"\bexclusion criteria\b.*?(?=\binclusion criteria\b|\Z)", re.IGNORECASE | re.DOTALL)


def topic_evidence(p: "Prepared", target: Target) -> int:
    """How plainly a record is about the topic itself, not a neighbour: 2 = its title names the
    topic or its text does at least twice, or NLM indexed it under the topic's MeSH heading (an
    indexer's reading of the whole article); 1 = one passing mention (a list of diseases, an
    exclusion criterion); 0 = never named. Worked out once per record (scoring and the
    never-named rule both ask)."""
    found = p._evidence.get(target.name)
    if found is None:
        found = p._evidence[target.name] = _evidence(p, target)
    return found


def _evidence(p: "Prepared", target: Target) -> int:
    if target.headings and any(heading_key(str(m)) in target.headings for m in p.record.get("mesh") or []):
        return 2
    if not p.terms_in_text(target):
        return 0
    title = p.record.get("title") or ""
    if topic_mentions(title, target):
        return 2
    return min(topic_mentions(p.full_text, target), 2)


def embed_targets(targets: list[Target], vectors: VectorsFn) -> None:
    """Embed every target's phrases (one call, so the cache and the model see them at once)."""
    phrases = [p for t in targets for p in [*t.prototypes, *t.negatives] if p]
    found = dict(zip(phrases, vectors(phrases)))
    for target in targets:
        target.proto_vectors = np.stack([found[p] for p in target.prototypes if p])
        if target.negatives:
            target.negative_vectors = np.stack([found[n] for n in target.negatives])


@dataclass
class Prepared:
    """A record ready to score: its sentences (title first) and their vectors.

    What every target asks of the record's text (its full text, which terms occur in it, which
    sentences are boilerplate) is worked out once per record, not once per target and sentence.
    """

    record: dict
    sentences: list[str]
    vectors: np.ndarray
    _terms: dict = field(default_factory=dict, repr=False, compare=False)
    _evidence: dict = field(default_factory=dict, repr=False, compare=False)  # target name -> topic_evidence

    @cached_property
    def doc_vector(self) -> np.ndarray:
        mean = self.vectors.mean(axis=0)
        return mean / (np.linalg.norm(mean) or 1.0)

    @cached_property
    def full_text(self) -> str:
        """Title and the whole text (terms and counts read all of it, not just what is embedded)."""
        r = self.record
        return f"{r.get('title') or ''} {r.get('text') or r.get('abstract') or ''}".strip()

    def terms_in_text(self, target: Target) -> dict[str, re.Pattern]:
        """The target's terms that occur in the full text (in the target's order), with their
        patterns. Every sentence is a verbatim piece of the full text cut at whitespace, so a
        term absent from the text is absent from each sentence: sentence-level matching only
        needs to try these."""
        found = self._terms.get(target.name)
        if found is None:
            found = self._terms[target.name] = {t: target.terms[t] for t in find_terms(self.full_text, target.terms)}
        return found

    @cached_property
    def boilerplate(self) -> list[bool]:
        """Per sentence: journal boilerplate (never evidence); the title never is."""
        return [bool(i) and is_boilerplate(s) for i, s in enumerate(self.sentences)]


def prepare(records: list[dict], passage_vectors: PassagesFn) -> list[Prepared]:
    """Split every record into sentences and embed them all in one call (the cache sees them all)."""
    sentence_lists = [record_sentences(r) for r in records]
    matrices = passage_vectors(sentence_lists) if records else []
    return [Prepared(record, sentences, matrix)
            for record, sentences, matrix in zip(records, sentence_lists, matrices)]


def _top_mean(values: np.ndarray, k: int) -> float:
    if values.size == 0:
        return 0.0
    return float(np.sort(values)[-k:].mean())


def target_features(p: Prepared, target: Target) -> list[float]:
    """Similarity and term features of one record for one target."""
    sims = (p.vectors @ target.proto_vectors.T).max(axis=1)  # best prototype per sentence
    title_text = p.sentences[0] if p.sentences else ""
    text = p.full_text
    present = p.terms_in_text(target)  # a term absent from the text adds 0 to every count below
    feats = [float(sims.max()), _top_mean(sims, 2), float(sims[0]),
             float((target.proto_vectors @ p.doc_vector).max()),
             math.log1p(count_terms(text, present)), float(len(present)),
             math.log1p(count_terms(title_text, present)),
             math.log1p(count_terms(text, target.exclude))]
    # Each phrase on its own too: "plasmapheresis improved stiffness" and "rituximab therapy"
    # are different cues, and the supervised layer can weigh them apart.
    feats += [float(v) for v in (p.vectors @ target.proto_vectors.T).max(axis=0)]
    if target.negative_vectors is not None:
        neg = (p.vectors @ target.negative_vectors.T).max(axis=1)
        feats += [float(neg.max()), float((target.negative_vectors @ p.doc_vector).max()),
                  float(sims.max() - neg.max())]
    return feats


SHARED = "_shared"  # the columns no target owns: publication-type flags and cohort size
GENERIC = 8         # each target's first columns, which mean the same for any target (bot.ranking.transfer)


def target_width(target: Target) -> int:
    """How many columns ``target_features`` gives for ``target`` (without embedding anything)."""
    return 8 + sum(1 for p in target.prototypes if p) + (3 if target.negatives else 0)


def column_layout(targets: list[Target]) -> dict[str, np.ndarray]:
    """Column indices of ``feature_matrix`` per target name, and ``SHARED`` for the common tail."""
    layout, start = {}, 0
    for target in targets:
        layout[target.name] = np.arange(start, start + target_width(target))
        start += target_width(target)
    layout[SHARED] = np.arange(start, start + len(pub_type_flags([], None)) + 1)
    return layout


def feature_matrix(prepared: list[Prepared], targets: list[Target]) -> np.ndarray:
    """Rows: records; columns: every target's features, pub-type flags, cohort size."""
    rows = []
    for p in prepared:
        hand = [f for target in targets for f in target_features(p, target)]
        hand += pub_type_flags(p.record.get("pub_types"), p.record.get("kind"))
        hand.append(math.log1p(cohort_size(p.full_text)))
        # The raw mean embedding is left out: 384 more columns overfit a few hundred examples
        # (cross-validated mean theme AP 0.85 with it, 0.89 without; bench/ranking.py).
        rows.append(np.asarray(hand, dtype=np.float32))
    return np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


_COHORT = re.compile(r"\b(\d{1,3}(?:,\d{3})*|\d+)\s+(?:[a-z\-]+\s+){0,2}?"
                     r"(?:patients|cases|subjects|participants|individuals|people|persons|children|adults)\b",
                     re.IGNORECASE)


def cohort_size(text: str) -> int:
    """The largest "N patients" (cases, subjects…) the text names: series and cohorts name many."""
    sizes = [int(m.group(1).replace(",", "")) for m in _COHORT.finditer(text or "")]
    return max([s for s in sizes if s < 10_000_000] or [0])


def lexical_text(record: dict) -> str:
    """What the TF-IDF half of the model reads: title, text, publication types, MeSH, keywords."""
    parts = [record.get("title") or "", record.get("text") or record.get("abstract") or ""]
    for key in ("pub_types", "mesh", "keywords"):
        parts += [str(v) for v in (record.get(key) or [])]
    return " ".join(parts)


def best_sentence(p: Prepared, target: Target, others: list[Target] = ()) -> tuple[str, list[str]]:
    """The record's sentence that best supports ``target`` (verbatim) and the terms it matches.

    Similarity to the target's phrases, nudged up by naming one of its terms and down by being
    as much about another theme (a sentence listing "diazepam and IVIG" explains neither theme
    as well as one saying what rituximab did). Journal boilerplate (copyright, licence,
    publisher) is never chosen, and a leading section label ("BACKGROUND: ") is cut off.
    """
    sims = (p.vectors @ target.proto_vectors.T).max(axis=1)
    if others:
        other = np.max([(p.vectors @ o.proto_vectors.T).max(axis=1) for o in others], axis=0)
        sims = sims - 0.3 * np.clip(other, 0, None)
    present = p.terms_in_text(target)
    term_hits = [find_terms(s, present) if present else [] for s in p.sentences]
    # Naming a term counts once: "intravenous immunoglobulin" also matches "immunoglobulin".
    bonus = np.array([0.1 if h else 0.0 for h in term_hits])
    # The title is a last resort: the abstract's own sentence is the better evidence.
    title_penalty = np.zeros(len(p.sentences))
    if len(p.sentences) > 1:
        title_penalty[0] = 0.08
    excluded = np.array([-np.inf if b else 0.0 for b in p.boilerplate])
    best = int(np.argmax(sims + bonus - title_penalty + excluded))
    terms = term_hits[best] or list(present)
    return strip_section_label(p.sentences[best]), terms[:5]
