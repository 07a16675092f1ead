"""Simulated labelers: noisy rankings around the gold score, with a set agreement rate.

Labeler ``i`` ranks K responses by ``gold + noise_i * N(0, 1)`` (a Thurstone model). Two
labelers agree on a pair with gold gap ``d`` with probability ``p_a p_b + (1-p_a)(1-p_b)``,
``p = Phi(d / (noise * sqrt 2))``. Agreement so depends on how spread out the gold scores of
the pool are, so :func:`calibrate` sets the noise scale for a target agreement (default
0.73; the paper measured 72.6 +- 1.5%) on a given pool, and :func:`measure_agreement`
measures it by simulation. Pairs with equal gold are ties: labelers agree on them half the
time, as people who cannot tell two answers apart would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np


@dataclass
class LabelerPool:
    """A team of labelers, each with its own noise level (gold-score units)."""

    noises: list[float]
    """noise standard deviation of each labeler"""

    def __post_init__(self):
        if len(self.noises) < 1 or min(self.noises) <= 0:
            raise ValueError(f"noises={self.noises}: give at least one positive noise level")

    def rank(self, gold: list[float], rng: np.random.Generator, labeler: int | None = None) -> list[int]:
        """Ranking of the responses (``ranking[i]`` = rank of response i, 0 = best) by one
        labeler (a random one when ``labeler`` is None)."""
        i = int(rng.integers(len(self.noises))) if labeler is None else labeler
        noisy = np.asarray(gold, float) + self.noises[i] * rng.standard_normal(len(gold))
        order = np.argsort(-noisy, kind="stable")
        ranks = np.empty(len(gold), int)
        ranks[order] = np.arange(len(gold))
        return ranks.tolist()


def make_labelers(n: int, scale: float, spread: float, rng: np.random.Generator) -> LabelerPool:
    """``n`` labelers with noise ``scale * m_i``, ``m_i`` uniform in [1-spread, 1+spread]."""
    return LabelerPool([float(scale * m) for m in rng.uniform(1 - spread, 1 + spread, n)])


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 (Abramowitz and Stegun 7.1.26); numpy has none."""
    t = 1 / (1 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1 - poly * np.exp(-x * x))


def _phi(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + _erf(np.asarray(x, float) / math.sqrt(2)))


def _gaps(gold_lists) -> tuple[np.ndarray, np.ndarray]:
    """Distinct absolute gold gaps over all pairs, and their frequencies."""
    d = np.abs(np.array([a - b for g in gold_lists for a, b in combinations(g, 2)], float))
    if d.size == 0:
        raise ValueError("no pairs: give gold-score lists with at least 2 responses each")
    gaps, counts = np.unique(np.round(d, 9), return_counts=True)
    return gaps, counts / counts.sum()


def _agreement(gaps: np.ndarray, weights: np.ndarray, noises) -> float:
    ps = [_phi(gaps / (s * math.sqrt(2))) for s in noises]
    pairs = list(combinations(range(len(ps)), 2)) or [(0, 0)]
    # elementwise sums, not np.dot: BLAS threads spin badly on a busy CPU
    return float(np.mean([(weights * (ps[a] * ps[b] + (1 - ps[a]) * (1 - ps[b]))).sum() for a, b in pairs]))


def expected_agreement(gold_lists, noises: list[float]) -> float:
    """Exact expected pairwise agreement of two distinct labelers drawn from ``noises``."""
    return _agreement(*_gaps(gold_lists), noises)


def calibrate(gold_lists, target: float = 0.73, multipliers=(1.0,)) -> float:
    """The noise scale at which labelers with noises ``scale * multipliers`` agree on
    ``target`` of the pairs of ``gold_lists`` (lists of gold scores of K responses)."""
    if not 0.5 < target < 1:
        raise ValueError(f"target={target}: agreement must be in (0.5, 1)")
    mult = list(multipliers) * (2 if len(multipliers) == 1 else 1)
    gaps, weights = _gaps(gold_lists)
    best = _agreement(gaps, weights, [1e-6 * m for m in mult])
    if best < target:
        raise ValueError(
            f"even noiseless labelers agree on only {best:.3f} of these pairs "
            f"(ties in gold); use a pool with fewer ties or a lower target"
        )
    lo, hi = 1e-6, 100.0
    for _ in range(50):  # agreement falls as noise grows: bisect on a log scale
        mid = math.sqrt(lo * hi)
        if _agreement(gaps, weights, [mid * m for m in mult]) > target:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def measure_agreement(pool: LabelerPool, gold_lists, rng: np.random.Generator, rounds: int = 1) -> float:
    """Fraction of pairs on which two different labelers (drawn at random per list) order
    the responses the same way, simulated over ``rounds`` passes through ``gold_lists``."""
    if len(pool.noises) < 2:
        raise ValueError("agreement needs a pool of at least 2 labelers")
    agree = total = 0
    for _ in range(rounds):
        for g in gold_lists:
            a, b = rng.choice(len(pool.noises), 2, replace=False)
            ra, rb = pool.rank(g, rng, int(a)), pool.rank(g, rng, int(b))
            for i, j in combinations(range(len(g)), 2):
                agree += (ra[i] < ra[j]) == (rb[i] < rb[j])
                total += 1
    return agree / total
