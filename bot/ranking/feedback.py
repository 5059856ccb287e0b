"""Curator judgements at scoring time.

Two rules, whatever the seed:

- **A judged item's label is the curator's.** Its score for the judged target becomes 1.0
  (relevant / theme present) or 0.0, so it is shown or hidden as the curator said.
- **Judgements move their neighbours** where the supervised layer cannot learn from them yet
  (a target no seed example labels: a new disease, an edited theme). An item's score is pulled
  toward the labels of judged items whose text is close to its own (cosine of the mean sentence
  vectors): a near-duplicate of an item judged irrelevant drops, a paraphrase of a relevant one
  rises, an unrelated item does not move. Once enough labels exist to train on, the trained
  model takes over gradually (``blend``).

``Judged`` is built once per ranker from the feedback examples (``scorer.feedback_examples``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# On the SPS dev set (packaged model, mean sentence vectors) an item's nearest neighbour shares its
# label 94% of the time above cosine 0.8, 83% at 0.7-0.8, 76% at 0.6-0.7; two relevant papers have
# a median cosine of 0.55. So only close texts count, and the closer the more.
NEIGHBOUR_FLOOR = 0.8    # cosine below this: not a neighbour
NEIGHBOUR_WEIGHT = 4.0   # a near-duplicate (cosine → 1) weighs four times the item's own score
SHRINK = 20.0            # with n labels a feedback-trained model gets n / (n + SHRINK) of the say


@dataclass
class Judged:
    """The judged items: ids, unit document vectors (n, d), and per target a label array
    (1.0, 0.0, or NaN where that item was not judged for that target)."""

    ids: list[str]
    vectors: np.ndarray
    labels: dict[str, np.ndarray]

    @classmethod
    def build(cls, examples: list[dict], doc_vectors: np.ndarray, target_names: list[str]) -> "Judged":
        labels = {name: np.full(len(examples), np.nan) for name in target_names}
        for i, ex in enumerate(examples):
            if ex.get("relevant") is not None and "relevance" in labels:
                labels["relevance"][i] = float(bool(ex["relevant"]))
            for theme, flag in (ex.get("themes") or {}).items():
                if theme in labels and theme != "relevance" and flag is not None:
                    labels[theme][i] = float(bool(flag))
        return cls([str(ex.get("id")) for ex in examples], np.asarray(doc_vectors, dtype=np.float32), labels)

    def count(self, target: str) -> int:
        return int(np.sum(~np.isnan(self.labels.get(target, np.array([])))))

    def evidence(self, target: str) -> int:
        """What the labels can teach a model about ``target``: twice the smaller class (50
        answers that are all "not relevant" but 3 teach little about telling the two apart)."""
        labels = self.labels.get(target, np.array([]))
        return 2 * int(min(np.sum(labels == 1), np.sum(labels == 0)))


def neighbour_adjusted(scores: np.ndarray, doc_vectors: np.ndarray, judged: Judged, target: str) -> np.ndarray:
    """``scores`` pulled toward the labels of nearby judged items:
    (score + Σ w·label) / (1 + Σ w), w = NEIGHBOUR_WEIGHT · ((cos − floor) / (1 − floor))² above the floor."""
    labels = judged.labels.get(target)
    if labels is None or len(scores) == 0:
        return scores
    known = ~np.isnan(labels)
    if not known.any():
        return scores
    sims = np.asarray(doc_vectors, dtype=np.float32) @ judged.vectors[known].T          # (items, judged)
    w = NEIGHBOUR_WEIGHT * np.square(np.clip((sims - NEIGHBOUR_FLOOR) / (1 - NEIGHBOUR_FLOOR), 0, None))
    return (scores + w @ labels[known]) / (1 + w.sum(axis=1))


def model_share(n_labels: int) -> float:
    """How much a model trained on curator labels alone decides, given their ``Judged.evidence``:
    a few labels barely, a few dozen of each kind mostly."""
    return n_labels / (n_labels + SHRINK)


def blend(model_scores: np.ndarray, neighbour_scores: np.ndarray, n_labels: int) -> np.ndarray:
    """A feedback-trained model's scores mixed with the neighbour-adjusted similarity score."""
    share = model_share(n_labels)
    return share * model_scores + (1 - share) * neighbour_scores


def curator_decides(scores: np.ndarray, item_ids: list, judged: Judged, target: str) -> np.ndarray:
    """Scores with every judged item's score set to its label (1.0 or 0.0)."""
    labels = judged.labels.get(target)
    if labels is None:
        return scores
    by_id = {i: label for i, label in zip(judged.ids, labels) if not np.isnan(label)}
    out = np.array(scores, dtype=float)
    for row, item_id in enumerate(item_ids):
        if str(item_id) in by_id:
            out[row] = by_id[str(item_id)]
    return out
