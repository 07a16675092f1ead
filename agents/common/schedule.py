"""Learning-rate schedule: linear warmup, then cosine decay (InstructGPT's SFT and RM schedule).

The schedule is a pure function of the step, so a resumed run needs only the step count to
continue it exactly, and there is no scheduler object to checkpoint.
"""

from __future__ import annotations

import math

import torch


def cosine_with_warmup(step: int, total: int, warmup: int, peak_lr: float, min_ratio: float = 0.0) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total``.

    Rises linearly from ``peak_lr / warmup`` at step 0 to ``peak_lr`` at step ``warmup - 1``, then
    follows a half cosine from ``peak_lr`` down to ``min_ratio * peak_lr`` at step ``total``.

    >>> cosine_with_warmup(0, 100, 0, 1.0)
    1.0
    >>> round(cosine_with_warmup(50, 100, 0, 1.0), 6)
    0.5
    >>> cosine_with_warmup(100, 100, 0, 1.0, min_ratio=0.1)
    0.1
    """
    if total <= 0 or warmup < 0 or not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"need total > 0, warmup >= 0, 0 <= min_ratio <= 1; got {total}, {warmup}, {min_ratio}")
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak_lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
