"""Which item to ask the curator about next (``spsbot label --review``): uncertainty sampling.

The ranker learns most from the items it is least sure of: those scored nearest its decision
threshold. After each answer the remaining items' scores move the way the answer moves its
neighbours (``bot.ranking.feedback``), so the next question is not a near-duplicate of the one
just answered; ``spsbot rank`` afterwards retrains on every answer.
"""

from __future__ import annotations

import numpy as np

from bot.ranking import feedback as FB


class ReviewQueue:
    """Unjudged items with their current scores (for ``target``) and unit document vectors."""

    def __init__(self, item_ids: list[str], scores, doc_vectors, threshold: float, target: str = "relevance"):
        self.ids = list(item_ids)
        self.scores = np.asarray(scores, dtype=float)
        self.vectors = np.asarray(doc_vectors, dtype=np.float32)
        self.threshold = float(threshold)
        self.target = target
        self.open = np.ones(len(self.ids), dtype=bool)

    def __len__(self) -> int:
        return int(self.open.sum())

    def next(self) -> str | None:
        """The open item scored nearest the threshold (ties: the first id), or None."""
        if not self.open.any():
            return None
        distance = np.where(self.open, np.abs(self.scores - self.threshold), np.inf)
        return self.ids[int(np.argmin(distance))]

    def score_of(self, item_id: str) -> float:
        return float(self.scores[self.ids.index(item_id)])

    def answer(self, item_id: str, relevant: bool | None) -> None:
        """Close ``item_id``; an answer (not a skip) moves the scores of its neighbours."""
        row = self.ids.index(item_id)
        self.open[row] = False
        if relevant is None:
            return
        judged = FB.Judged([item_id], self.vectors[row:row + 1], {self.target: np.array([float(relevant)])})
        self.scores = FB.neighbour_adjusted(self.scores, self.vectors, judged, self.target)


def decision_threshold(scores, relevant) -> float:
    """The cut the ranker used, from stored scores and verdicts: midway between the lowest score
    judged relevant and the highest judged not relevant (0.5 when one side is empty)."""
    scores, relevant = np.asarray(scores, dtype=float), np.asarray(relevant, dtype=bool)
    if not relevant.any() or relevant.all():
        return 0.5
    low, high = scores[relevant].min(), scores[~relevant].max()
    return float((low + high) / 2) if low >= high else 0.5
