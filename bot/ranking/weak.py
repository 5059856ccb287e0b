"""Weak labels the literature already carries: NLM's MeSH indexing, read as a check on relevance.

A profile with no human-labelled seed (any topic but the bundled SPS one) still has a judge of
every MEDLINE record it stores: NLM's indexers. A record whose *major* MeSH topics include the
topic's heading is about the topic (a weak positive); a record indexed without the heading at all
is not (a weak negative) — including one that names the topic in passing, which is the near miss a
relevance decision most needs to get right. A record with the heading only as a minor topic, or
with no MeSH yet (new in PubMed, a trial, a feed item), gives no label.

The topic's headings are ``[topic] mesh`` (compared without case or punctuation), for a disease
whose heading is not its name (NMOSD's is Neuromyelitis Optica); without that key they are read
from its own names (its ``name`` and its PubMed query's names): "Myasthenia gravis" is the heading
Myasthenia Gravis, "Stiff Person Syndrome" the heading Stiff-Person Syndrome. ``mesh = []`` says the
topic has no heading: no weak labels. When the store holds MeSH-indexed records but none with a
heading as a major topic, ``heading_note`` says so (``rank`` and ``status`` show it): the heading
is probably misspelt or not NLM's.

Once the store holds ``MIN_EACH`` of each kind, a profile with no human seed states the precision
and recall its relevance decision reaches on them (``estimate``: ``rank`` says it, ``status``
repeats it). Nothing learns from them: a model learnt from them ranked worse than the topic-evidence
rule it would replace (relevance AUC 0.991 -> 0.984 on MG, 0.995 -> 0.987 on SPS without its seed:
``bench/weak_labels.py``), so every weak label is a held-out one. A record indexed under the
heading (major or minor) names the topic (``features.topic_evidence``).
"""

from __future__ import annotations

import re

from bot.ranking.records import record_for_ranking
from bot.ranking.text import query_names
from bot.store import loads

MIN_EACH = 20      # weak positives and negatives each before precision and recall are stated


def heading_key(text: str) -> str:
    """A MeSH heading as compared: case and punctuation ignored ("Stiff-Person Syndrome" = "stiff person syndrome")."""
    return re.sub(r"[^a-z0-9]+", " ", (text or "").lower()).strip()


MESH_BROWSER = "https://meshb.nlm.nih.gov/"  # where a heading is looked up


def topic_headings(config) -> list[str]:
    """The MeSH headings that mark a record as about the topic, as written: ``[topic] mesh``, else
    the topic's name and its query's names."""
    topic = config.topic
    names = topic.mesh if topic.mesh is not None else [topic.name, *query_names(topic.pubmed_query)]
    return [n for n in dict.fromkeys(names) if heading_key(n)]


def weak_label(item: dict, headings: set[str]) -> int | None:
    """1: the topic's heading is a major MeSH topic; 0: MeSH-indexed without the heading; None: no
    label (no MeSH, the heading only as a minor topic, or stored before the major flag was kept)."""
    mesh = item.get("mesh")
    mesh = mesh if isinstance(mesh, list) else loads(mesh, [])
    if not mesh:
        return None
    extra = item.get("extra")
    extra = extra if isinstance(extra, dict) else loads(extra, {})
    if any(heading_key(m) in headings for m in extra.get("mesh_major") or []):
        return 1
    if any(heading_key(m) in headings for m in mesh):
        return None
    return 0


def weak_examples(items: list[dict], config) -> list[dict]:
    """The items that carry a weak label, as relevance examples (ranker record, ``relevant``,
    ``source`` "mesh"), in id order."""
    headings = {heading_key(h) for h in topic_headings(config)}
    if not headings:  # `mesh = []`: no heading, so no record is a weak negative either
        return []
    examples = []
    for item in sorted(items, key=lambda i: i["id"]):
        label = weak_label(item, headings)
        if label is not None:
            examples.append({**record_for_ranking(item), "relevant": bool(label),
                             "source": "mesh"})
    return examples


def counts(examples: list[dict]) -> tuple[int, int]:
    """(weak positives, weak negatives)."""
    positives = sum(1 for ex in examples if ex["relevant"])
    return positives, len(examples) - positives


def enough(examples: list[dict]) -> bool:
    return min(counts(examples)) >= MIN_EACH


def heading_note(examples: list[dict], config) -> str | None:
    """One line when the store has MeSH-indexed records and none with the topic's heading as a
    major topic (the heading is likely wrong: no weak positive can ever be found), else None."""
    positives, negatives = counts(examples)
    headings = topic_headings(config)
    if positives or not negatives or not headings:
        return None
    fix = ("check [topic] mesh against" if config.topic.mesh is not None
           else f"give the heading NLM uses for {config.topic.name} as [topic] mesh = [\"...\"]; look it up at")
    named = " or ".join(headings[:3]) + (f" (or {len(headings) - 3} more names)" if len(headings) > 3 else "")
    return (f"none of the {negatives} MeSH-indexed records in the store has {named} as a major "
            f"topic, so NLM's indexing cannot check relevance: {fix} {MESH_BROWSER}")


def estimate(examples: list[dict], decided: dict[str, bool]) -> dict | None:
    """Precision and recall of the stored relevance decisions (``decided``, by item id) on the weak
    labels among them, with their counts; None with fewer than ``MIN_EACH`` of each decided."""
    pairs = [(ex["relevant"], decided[ex["id"]]) for ex in examples if ex["id"] in decided]
    positives = sum(1 for label, _ in pairs if label)
    if min(positives, len(pairs) - positives) < MIN_EACH:
        return None
    called = sum(1 for _, call in pairs if call)
    hits = sum(1 for label, call in pairs if label and call)
    return {"precision": hits / max(called, 1), "recall": hits / positives,
            "positives": positives, "negatives": len(pairs) - positives}


def describe(examples: list[dict], estimated: dict | None, topic: str) -> str:
    """What the weak labels say about this topic's relevance decision, one clause."""
    positives, negatives = counts(examples)
    indexed = f"{positives} records with {topic} as a major MeSH topic, {negatives} indexed without it"
    if estimated is None and not enough(examples):
        return (f"too few weak labels to estimate relevance's precision and recall ({indexed}; "
                f"{MIN_EACH} of each needed)")
    if estimated is None:
        return f"relevance's precision and recall on NLM's MeSH indexing ({indexed}) are stated once they are ranked"
    return (f"relevance checked against NLM's MeSH indexing ({estimated['positives']} records with {topic} as a "
            f"major topic, {estimated['negatives']} indexed without it; nothing learns from them): precision "
            f"{estimated['precision']:.2f}, recall {estimated['recall']:.2f} of its decisions on them (tangential "
            f"records, the heading a minor topic, are not among them and lower precision)")
