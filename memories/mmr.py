"""Maximal marginal relevance: re-rank a candidate pool so near-duplicates do not crowd the top."""

from __future__ import annotations

import numpy as np


def mmr_order(relevance: np.ndarray, vectors: np.ndarray, limit: int, diversity: float) -> list[int]:
    """Indices into the pool, in pick order.

    Each step picks the candidate maximising ``(1 - diversity) * relevance - diversity * redundancy``,
    redundancy being its highest cosine to an already picked one. ``diversity=0`` keeps the plain
    relevance order; ``diversity=1`` only avoids what was picked (the first pick is still the best).
    """
    count = len(relevance)
    if count == 0 or limit <= 0:
        return []
    picked = [int(np.argmax(relevance))]
    redundancy = vectors @ vectors[picked[0]]
    available = np.ones(count, dtype=bool)
    available[picked[0]] = False
    while len(picked) < min(limit, count):
        score = (1.0 - diversity) * relevance - diversity * redundancy
        score[~available] = -np.inf
        best = int(np.argmax(score))
        picked.append(best)
        available[best] = False
        np.maximum(redundancy, vectors @ vectors[best], out=redundancy)
    return picked
