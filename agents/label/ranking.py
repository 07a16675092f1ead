"""Rankings as the labeling app takes them: validation, the paper's pairwise agreement, pairs.

A ranking of K completions is textbandit's K-wise format: a list ``ranks`` of K ints, ``ranks[i]``
the rank of completion ``i``, 0 = best. **Ties** are equal ranks, and ranks are **dense**: the values
used are exactly ``0..m-1`` for some ``m <= K``. So ``[0, 1, 1, 2]`` (completions 1 and 2 tie for
second) is valid, ``[0, 2, 2, 3]`` is not (rank 1 is missing), and a ranking without ties is a
permutation of ``0..K-1``. The labeler's page shows ranks 1-based (1 = best); the JSON API and
the exported files are 0-based.

Agreement (InstructGPT, section 3.4 and appendix B.5, "inter-annotator agreement"): two labelers
who ranked the same K completions agree on a pair ``i < j`` when both order it the same way.
Ties count as an ordering of their own: a pair both labelers tie agrees, a pair only one of them
ties disagrees. Rates are pooled over pairs (micro-averaged), so an item with K = 9 (36 pairs)
weighs more than one with K = 4 (6 pairs), as the pairs the reward model trains on do.

    >>> pair_agreement([0, 1, 2], [0, 2, 1])
    (2, 3)
    >>> preference_pairs([1, 0, 1])
    [(1, 0), (1, 2)]
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

FLAGS = {
    "fails_instruction": "fails to follow the instruction",
    "made_up_facts": "makes up facts",
    "inappropriate": "inappropriate for a customer assistant",
}
"""The paper's per-completion metadata (a subset of its appendix B list): name -> what the page shows."""

MAX_K = 9
"""Most completions per item: the paper's K = 4..9, and number keys 1-9 reach every position."""


class RankingError(ValueError):
    """A submitted ranking, flag list or score is malformed; the message says what a valid one is."""


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def validate_ranking(ranks, k: int, *, base: int = 0) -> list[int]:
    """``ranks`` as 0-based ints if it is a dense ranking of ``k`` completions (ties allowed).

    ``base=1`` checks ranks written as the labeler's page shows them (1 = best), so that the message is in
    the labeler's terms; the result is 0-based either way."""
    best = "0 = best" if base == 0 else "1 = best"
    if not isinstance(ranks, (list, tuple)):
        raise RankingError(f"the ranking must be a list of {k} ints ({best}), got {type(ranks).__name__}")
    if len(ranks) != k:
        raise RankingError(f"the ranking has {len(ranks)} ranks for {k} completions; give one rank per completion")
    bad = [x for x in ranks if not _is_int(x)]
    if bad:
        raise RankingError(f"ranks must be ints ({best}), got {bad[0]!r}")
    if any(not base <= x < base + k for x in ranks):
        raise RankingError(f"ranks must lie in {base}..{base + k - 1} ({best}), got {list(ranks)}")
    used = sorted(set(ranks))
    if used != list(range(base, base + len(used))):
        example = [base, base + 1, base + 1, base + 2]
        raise RankingError(
            f"ranks must be dense, got {list(ranks)}: tied completions share a rank and the next one takes the "
            f"next rank (e.g. {example}); without ties the ranking is a permutation of {base}..{base + k - 1}"
        )
    return [int(x) - base for x in ranks]


def validate_flags(flags, k: int) -> list[list[str]]:
    """Per-completion flag names (each list sorted, deduplicated); ``None`` means no flags."""
    if flags is None:
        return [[] for _ in range(k)]
    if not isinstance(flags, (list, tuple)) or len(flags) != k or not all(isinstance(f, (list, tuple)) for f in flags):
        raise RankingError(f"flags must be a list of {k} lists of flag names (one per completion)")
    unknown = sorted({f for fs in flags for f in fs if f not in FLAGS}, key=str)
    if unknown:
        raise RankingError(f"unknown flag(s) {unknown}; use {sorted(FLAGS)}")
    return [sorted(set(fs)) for fs in flags]


def validate_score(score) -> int | None:
    """The optional 1-7 overall score of the item (the paper's Likert scale); ``None`` when not given."""
    if score is None:
        return None
    if not _is_int(score) or not 1 <= score <= 7:
        raise RankingError(f"the score must be an int from 1 (worst) to 7 (best), or absent; got {score!r}")
    return score


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def pair_agreement(a: Sequence[int], b: Sequence[int]) -> tuple[int, int]:
    """``(agreeing pairs, pairs)`` of two rankings of the same K completions (ties: see the module doc)."""
    if len(a) != len(b):
        raise ValueError(f"rankings of different lengths ({len(a)} and {len(b)}) rank different items")
    pairs = list(itertools.combinations(range(len(a)), 2))
    agree = sum(_sign(a[i] - a[j]) == _sign(b[i] - b[j]) for i, j in pairs)
    return agree, len(pairs)


def _rate(agree: int, pairs: int, items: int) -> dict:
    return {"agreement": agree / pairs if pairs else None, "agreeing_pairs": agree, "pairs": pairs, "items": items}


def agreement(rankings: Mapping[object, Mapping[str, Sequence[int]]]) -> dict:
    """Inter-labeler agreement from ``{item: {labeler: ranks}}``; only items with two or more rankings count.

    Returns ``{"overall": R, "labelers": {name: R}}`` where ``R = {"agreement", "agreeing_pairs", "pairs",
    "items"}``: overall over every pair of labelers on every shared item; per labeler over their pairs with
    the others on the items they share (``agreement`` is None where there is nothing shared).
    """
    total = [0, 0, 0]
    per: dict[str, list[int]] = {}
    for by_labeler in rankings.values():
        names = sorted(by_labeler)
        for name in names:
            per.setdefault(name, [0, 0, 0])
        if len(names) < 2:
            continue
        total[2] += 1
        for name in names:
            per[name][2] += 1
        for u, v in itertools.combinations(names, 2):
            agree, pairs = pair_agreement(by_labeler[u], by_labeler[v])
            for acc in (total, per[u], per[v]):
                acc[0] += agree
                acc[1] += pairs
    return {"overall": _rate(*total), "labelers": {n: _rate(*per[n]) for n in sorted(per)}}


def preference_pairs(ranks: Sequence[int]) -> list[tuple[int, int]]:
    """``(better, worse)`` completion indices of every pair the ranking orders (tied pairs are left out)."""
    return [
        (i, j) if ranks[i] < ranks[j] else (j, i)
        for i, j in itertools.combinations(range(len(ranks)), 2)
        if ranks[i] != ranks[j]
    ]
