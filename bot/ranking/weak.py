"""Weak labels the literature already carries: NLM's MeSH indexing, read as relevance examples.

A profile with no human-labelled seed (any topic but the bundled SPS one) still has a judge of
every MEDLINE record it stores: NLM's indexers. A record whose *major* MeSH topics include the
topic's heading is about the topic (a weak positive); a record indexed without the heading at all
is not (a weak negative) — including one that names the topic in passing, which is the near miss
a relevance model most needs to see. A record with the heading only as a minor topic, or with no
MeSH yet (new in PubMed, a trial, a feed item), gives no label.

The topic's headings are ``[topic] mesh`` (compared without case or punctuation), for a disease
whose heading is not its name (NMOSD's is Neuromyelitis Optica); without that key they are read
from its own names (its ``name`` and its PubMed query's phrases): "Myasthenia gravis" is the heading
Myasthenia Gravis, "Stiff Person Syndrome" the heading Stiff-Person Syndrome. ``mesh = []`` says the
topic has no heading: no weak labels. When the store holds MeSH-indexed records but none with a
heading as a major topic, ``heading_note`` says so (``rank`` and ``status`` show it): the heading
is probably misspelt or not NLM's.

Once the store holds ``MIN_EACH`` of each kind, ``scorer.Ranker`` trains its relevance model on
them (where no human seed exists) and states the precision and recall the decision reaches on
held-out weak labels (``estimate``); the model is cached by the weak-label set's fingerprint, so
it is rebuilt as the store grows.
"""

from __future__ import annotations

import re

import numpy as np

from bot.ranking.records import record_for_ranking
from bot.ranking.text import query_names
from bot.store import loads

MIN_EACH = 20      # weak positives and negatives each before a model is fitted on them
FOLDS = 5          # folds of the held-out estimate
WEAK_WEIGHT = 1.0  # a weak label counts as one seed example (a curator's judgement: five)


def heading_key(text: str) -> str:
    """A MeSH heading as compared: case and punctuation ignored ("Stiff-Person Syndrome" = "stiff person syndrome")."""
    return re.sub(r"[^a-z0-9]+", " ", (text or "").lower()).strip()


MESH_BROWSER = "https://meshb.nlm.nih.gov/"  # where a heading is looked up


def topic_headings(config) -> list[str]:
    """The MeSH headings that mark a record as about the topic, as written: ``[topic] mesh``, else
    the topic's name and its query's phrases."""
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
    ``weight``, ``source`` "mesh"), in id order."""
    headings = {heading_key(h) for h in topic_headings(config)}
    if not headings:  # `mesh = []`: no heading, so no record is a weak negative either
        return []
    examples = []
    for item in sorted(items, key=lambda i: i["id"]):
        label = weak_label(item, headings)
        if label is not None:
            examples.append({**record_for_ranking(item), "relevant": bool(label), "weight": WEAK_WEIGHT,
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
            f"topic, so relevance learns nothing from NLM's indexing: {fix} {MESH_BROWSER}")


def estimate(X: np.ndarray, texts: list[str], y: np.ndarray, unnamed: np.ndarray, train, seed: int = 0) -> dict:
    """Precision and recall of the relevance decision on held-out weak labels: ``FOLDS``-fold,
    each fold's records decided by a model ``train(X, texts, labels, weights)`` fitted on the
    others, at that model's own cut, with the topic-evidence rule (a record that never names the
    topic is halved) applied as in scoring. Pooled over the folds."""
    from sklearn.model_selection import StratifiedKFold
    decided = np.zeros(len(y), dtype=bool)
    splitter = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    for fit_rows, held in splitter.split(X, y):
        labels = {"relevance": (y[fit_rows], np.ones(len(fit_rows), dtype=bool))}
        model = train(X[fit_rows], [texts[i] for i in fit_rows], labels, np.ones(len(fit_rows)))
        target = model.targets.get("relevance")
        if target is None:
            continue
        probs = model.predict(X[held], [texts[i] for i in held])["relevance"]
        probs = np.where(unnamed[held], probs / 2, probs)
        decided[held] = probs >= target.threshold
    true_pos = int((decided & (y == 1)).sum())
    return {"precision": true_pos / max(int(decided.sum()), 1), "recall": true_pos / max(int(y.sum()), 1),
            "positives": int(y.sum()), "negatives": int(len(y) - y.sum()), "folds": FOLDS}


def describe(examples: list[dict], estimated: dict | None, topic: str) -> str:
    """What the weak labels say about this topic's relevance decision, one clause."""
    positives, negatives = counts(examples)
    if estimated is None:
        return (f"relevance has too few weak labels to learn from or to estimate its precision and recall "
                f"({positives} records with {topic} as a major MeSH topic, {negatives} indexed without it; "
                f"{MIN_EACH} of each needed)")
    return (f"relevance is learnt from NLM's MeSH indexing ({positives} records with {topic} as a major topic, "
            f"{negatives} indexed without it): estimated precision {estimated['precision']:.2f}, recall "
            f"{estimated['recall']:.2f} on held-out weak labels ({estimated['folds']}-fold, "
            f"{estimated['positives'] + estimated['negatives']} records; tangential records, the heading a minor "
            f"topic, are not in it and lower precision)")
