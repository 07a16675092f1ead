"""The learning-rate schedule of every trainer: linear warm-up, then a decay to the end of the run.

:func:`learning_rate` is a pure function of the step, so a resumed run needs only its step count
to continue the schedule exactly: there is no scheduler object to checkpoint. Each trainer calls
:func:`set_lr` with it before every optimizer step. Pretraining, SFT and the reward model decay
with a half cosine (InstructGPT's SFT and RM schedule); PPO decays linearly to 0 by default, as
lm-human-preferences does.
"""

from __future__ import annotations

import math

import torch

DECAYS = ("cosine", "linear", "constant")


def learning_rate(
    step: int, total: int, peak: float, warmup: int = 0, decay: str = "cosine", min_ratio: float = 0.0
) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total``.

    Rises linearly from ``peak / warmup`` at step 0 to ``peak`` at step ``warmup - 1``, then
    decays from ``peak`` to ``min_ratio * peak`` at step ``total``: along a half cosine
    (``"cosine"``), a straight line (``"linear"``), or not at all (``"constant"``).

    >>> learning_rate(0, 100, 1.0)
    1.0
    >>> round(learning_rate(50, 100, 1.0), 6), learning_rate(50, 100, 1.0, decay="linear")
    (0.5, 0.5)
    >>> learning_rate(100, 100, 1.0, min_ratio=0.1), learning_rate(0, 100, 1.0, warmup=4)
    (0.1, 0.25)
    """
    if total <= 0 or warmup < 0 or not 0.0 <= min_ratio <= 1.0 or decay not in DECAYS:
        raise ValueError(
            f"need total > 0, warmup >= 0, 0 <= min_ratio <= 1 and decay in {DECAYS}; "
            f"got {total}, {warmup}, {min_ratio}, {decay!r}"
        )
    if step < warmup:
        return peak * (step + 1) / warmup
    if decay == "constant":
        return peak
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if decay == "linear":
        return peak * (min_ratio + (1.0 - min_ratio) * (1.0 - progress))
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group: ``lr`` times the group's ``lr_scale`` (default 1)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
