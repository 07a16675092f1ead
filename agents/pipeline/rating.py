"""Bradley-Terry ratings on the Elo scale, from many pairwise comparisons.

``P(i beats j) = 1 / (1 + 10 ** ((R_j - R_i) / 400))``. :func:`bradley_terry` fits the
strengths with Hunter's (2004) MM algorithm, with a small symmetric prior (``prior`` virtual
draws against the average item) so that an item that never lost keeps a finite rating.
Ratings are centred at 0. Used in evaluation to rate responses or whole models.

>>> r = bradley_terry([("a", "b")] * 3 + [("b", "a")])
>>> round(r["a"] - r["b"])   # 3:1 with the prior's pull towards 0
165
"""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations


def pairs_from_ranking(items: list, ranking: list[int]) -> list[tuple]:
    """(winner, loser) pairs from one K-wise ranking (rank 0 = best; ties give no pair)."""
    out = []
    for i, j in combinations(range(len(items)), 2):
        if ranking[i] < ranking[j]:
            out.append((items[i], items[j]))
        elif ranking[j] < ranking[i]:
            out.append((items[j], items[i]))
    return out


def bradley_terry(comparisons, prior: float = 0.5, iters: int = 500, tol: float = 1e-9) -> dict:
    """Elo-scale ratings ``{item: rating}`` from ``(winner, loser)`` pairs.

    A ``(a, b, 0.5)`` triple records a draw (half a win each way)."""
    wins: dict = defaultdict(float)
    games: dict = defaultdict(float)  # games[(i, j)] for i < j by key order
    items: set = set()
    for c in comparisons:
        if len(c) == 3 and c[2] == 0.5:
            a, b = c[0], c[1]
            wins[a] += 0.5
            wins[b] += 0.5
        elif len(c) == 2:
            a, b = c
            wins[a] += 1.0
        else:
            raise ValueError(f"comparison {c!r}: give (winner, loser) or (a, b, 0.5)")
        if a == b:
            raise ValueError(f"comparison {c!r} compares an item with itself")
        items.update((a, b))
        games[frozenset((a, b))] += 1.0
    if not items:
        return {}
    items_l = sorted(items, key=repr)
    opp = defaultdict(list)
    for pair, n in games.items():
        a, b = tuple(pair)
        opp[a].append((b, n))
        opp[b].append((a, n))
    p = {i: 1.0 for i in items_l}
    for _ in range(iters):
        # MM update; the prior is `prior` wins and losses against a virtual item of strength 1
        new = {}
        for i in items_l:
            denom = sum(n / (p[i] + p[j]) for j, n in opp[i]) + 2 * prior / (p[i] + 1.0)
            new[i] = (wins[i] + prior) / denom
        g = math.exp(sum(math.log(v) for v in new.values()) / len(new))
        new = {i: v / g for i, v in new.items()}
        delta = max(abs(math.log(new[i] / p[i])) for i in items_l)
        p = new
        if delta < tol:
            break
    return {i: 400 * math.log10(p[i]) for i in items_l}


def win_probability(r_a: float, r_b: float) -> float:
    """Probability that the item rated ``r_a`` beats the one rated ``r_b``."""
    return 1 / (1 + 10 ** ((r_b - r_a) / 400))
