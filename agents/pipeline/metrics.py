"""Evaluation metrics of the report: win rates with bootstrap intervals, n-gram overlap (BLEU,
ROUGE-L), per-kind means.

BLEU and ROUGE are here to be shown *beside* the gold score, not instead of it: the seed notes'
point is that n-gram overlap with a demonstration is not the user's intent.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Sequence

import numpy as np


def win_rate(a: Sequence[float], b: Sequence[float]) -> float:
    """How often ``a[i]`` beats ``b[i]`` (ties count half), over paired scores."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"need two equally long, non-empty score lists, got {len(a)} and {len(b)}")
    return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(a, b)) / len(a)


def win_interval(
    a: Sequence[float], b: Sequence[float], seed: int = 0, n_boot: int = 2000, level: float = 0.95
) -> tuple[float, float]:
    """A bootstrap ``level`` interval of :func:`win_rate` (percentile method): the prompts are resampled
    with replacement, each keeping its pair of scores.

    >>> win_interval([1.0] * 30 + [0.0] * 10, [0.5] * 40)  # won 30 of 40: 75%
    (0.6, 0.875)
    """
    if len(a) != len(b) or not len(a):
        raise ValueError(f"need two equally long, non-empty score lists, got {len(a)} and {len(b)}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    outcome = np.where(x > y, 1.0, np.where(x == y, 0.5, 0.0))
    rows = np.random.default_rng([seed, 83]).integers(len(outcome), size=(n_boot, len(outcome)))
    rates = outcome[rows].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(rates, tail)), float(np.quantile(rates, 1 - tail))


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(hypothesis: str, reference: str, max_n: int = 4) -> float:
    """BLEU-``max_n`` of one hypothesis against one reference, in [0, 1].

    Clipped n-gram precisions with add-one smoothing for n > 1 (Lin & Och 2004, "smoothing 2"),
    geometric mean, brevity penalty ``exp(1 - r/c)`` when the hypothesis is shorter.
    """
    hyp, ref = hypothesis.split(), reference.split()
    if not hyp or not ref:
        return 0.0
    log_p = 0.0
    for n in range(1, max_n + 1):
        h, r = _ngrams(hyp, n), _ngrams(ref, n)
        matched = sum(min(c, r[g]) for g, c in h.items())
        total = max(len(hyp) - n + 1, 0)
        if n == 1:
            if matched == 0:
                return 0.0
            log_p += math.log(matched / total)
        else:
            log_p += math.log((matched + 1) / (total + 1))
    brevity = 1.0 if len(hyp) >= len(ref) else math.exp(1 - len(ref) / len(hyp))
    return brevity * math.exp(log_p / max_n)


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1: the longest common subsequence of words, as precision/recall's harmonic mean."""
    hyp, ref = hypothesis.split(), reference.split()
    lcs = _lcs(hyp, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(hyp), lcs / len(ref)
    return 2 * p * r / (p + r)


def mean_by(keys: Sequence[str], values: Sequence[float]) -> dict[str, float]:
    """Mean of ``values`` grouped by ``keys`` (e.g. the instruction kind), sorted by key."""
    groups: dict[str, list[float]] = defaultdict(list)
    for k, v in zip(keys, values):
        groups[k].append(float(v))
    return {k: sum(v) / len(v) for k, v in sorted(groups.items())}
