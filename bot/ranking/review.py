"""Which item to ask the curator about next (``spsbot label --review``): uncertainty sampling.

The ranker learns most from the items it is least sure of: those scored nearest its decision
threshold. But a model needs examples of both kinds before it can learn anything
(``MIN_CLASS_EXAMPLES`` each), and the items nearest the cut are mostly of one kind (on the SPS
data: near misses, 49 of the first 50), so until both kinds have enough labels the queue asks
about the item it is surest belongs to the missing kind. After each answer the remaining items'
scores move the way the answer moves its neighbours (``bot.ranking.feedback``), so the next
question is not a near-duplicate of the one just answered; ``spsbot rank`` afterwards retrains
on every answer.
"""

from __future__ import annotations

import numpy as np

from bot.ranking import feedback as FB
from bot.ranking.model import MIN_CLASS_EXAMPLES


class ReviewQueue:
    """Unjudged items with their current scores (for ``target``) and unit document vectors;
    ``known``: how many relevant / not relevant labels the store already has."""

    def __init__(self, item_ids: list[str], scores, doc_vectors, threshold: float, target: str = "relevance",
                 known: tuple[int, int] = (0, 0)):
        self.ids = list(item_ids)
        self.scores = np.asarray(scores, dtype=float)
        self.vectors = np.asarray(doc_vectors, dtype=np.float32)
        self.threshold = float(threshold)
        self.target = target
        self.open = np.ones(len(self.ids), dtype=bool)
        self.labelled = {True: known[0], False: known[1]}

    def __len__(self) -> int:
        return int(self.open.sum())

    def next(self) -> str | None:
        """The open item scored nearest the threshold (ties: the first id) — or, while one kind
        has fewer than MIN_CLASS_EXAMPLES labels, the open item likeliest to be of that kind."""
        if not self.open.any():
            return None
        if self.labelled[True] < MIN_CLASS_EXAMPLES:
            return self.ids[int(np.argmax(np.where(self.open, self.scores, -np.inf)))]
        if self.labelled[False] < MIN_CLASS_EXAMPLES:
            return self.ids[int(np.argmin(np.where(self.open, self.scores, np.inf)))]
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
        self.labelled[bool(relevant)] += 1
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
