"""The reward model's ranking loss (InstructGPT eq. 1), as pure functions.

    loss(theta) = -1/C(K,2) * E_{(x, y_w, y_l)} [log sigmoid(r(x, y_w) - r(x, y_l))]

All C(K,2) pairs of one prompt's K ranked completions form one batch element, so each completion
is forwarded once and its score reused in K - 1 pairs. Tied completions form no pair; a
comparison's loss is the mean over its non-tied pairs (C(K,2) of them when there are no ties).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pair_mask(ranks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, K, K) bool: ``[b, i, j]`` when completion i is ranked strictly better than j (0 = best)."""
    both = valid[:, :, None] & valid[:, None, :]
    return (ranks[:, :, None] < ranks[:, None, :]) & both


def kwise_ranking_loss(scores: torch.Tensor, ranks: torch.Tensor, valid: torch.Tensor | None = None):
    """Per-comparison ranking losses and pair counts.

    ``scores``/``ranks``: (B, K) (rank 0 = best, equal ranks = tie); ``valid``: (B, K) bool, False on
    padding when comparisons of different K share a batch. Returns ``(loss (B,), n_pairs (B,),
    n_correct (B,))``: the mean of ``-log sigmoid(r_w - r_l)`` over each comparison's non-tied pairs,
    their number, and how many of them the scores order correctly (``r_w > r_l``).
    """
    if valid is None:
        valid = torch.ones_like(ranks, dtype=torch.bool)
    mask = pair_mask(ranks, valid)  # (B, K, K)
    diff = scores[:, :, None] - scores[:, None, :]  # (B, K, K): r_i - r_j
    n_pairs = mask.sum(dim=(1, 2))
    losses = -(F.logsigmoid(diff) * mask).sum(dim=(1, 2)) / n_pairs.clamp(min=1)
    n_correct = ((diff > 0) & mask).sum(dim=(1, 2))
    return losses, n_pairs, n_correct


def pairwise_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Mean ``-log sigmoid(r_chosen - r_rejected)`` over (N,) pairs (the K = 2 case)."""
    return -F.logsigmoid(chosen - rejected).mean()


def ranked_pairs(ranking: list[int]) -> list[tuple[int, int]]:
    """``(winner, loser)`` indices of every non-tied pair of a ranking (0 = best)."""
    k = len(ranking)
    return [(i, j) for i in range(k) for j in range(k) if ranking[i] < ranking[j]]
