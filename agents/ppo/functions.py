"""The math of PPO for RLHF as pure functions: GAE, whitening, KL estimators, the losses.

Shapes: ``N`` responses of ``L`` tokens; ``mask`` is the ``response_mask`` of the environment
(1 up to and including the first EOS). Every function ignores masked positions.

References: Schulman et al. 2017 (PPO), Schulman et al. 2016 (GAE), Ziegler et al. 2019
(adaptive KL), Schulman's note "Approximating KL Divergence" (k1, k2, k3), and "The N
Implementation Details of RLHF with PPO" (Huang et al. 2023; cited as "N-details" below).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1.

    >>> masked_mean(torch.tensor([[1.0, 2.0, 9.0]]), torch.tensor([[1, 1, 0]])).item()
    1.5
    """
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over the positions where ``mask`` is 1 (Bessel-corrected by default)."""
    mask = mask.to(x.dtype)
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = (((x - mean) ** 2) * mask).sum() / n.clamp(min=1)
    if unbiased:
        var = var * n / (n - 1).clamp(min=1)
    return var


def whiten(x: torch.Tensor, mask: torch.Tensor | None = None, shift_mean: bool = True, eps: float = 1e-8):
    """``(x - mean) / std`` over the masked positions; 0 where masked.

    ``shift_mean=False`` only rescales (adds the mean back), as lm-human-preferences does for
    rewards: their sign carries meaning; advantages are shifted too.
    """
    if mask is None:
        mask = torch.ones_like(x)
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns of per-token rewards: (N, L) each.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``. The
    episode ends after the last response token, so the value after it is 0 (a terminal state,
    not a bootstrap). Responses are left-aligned and contiguous, so zeroing values and rewards
    under the mask is all the bookkeeping needed. Returns ``A + V`` are the value targets.
    """
    mask = mask.to(values.dtype)
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(values)
    next_adv = torch.zeros_like(values[:, 0])
    next_value = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = delta + gamma * lam * next_adv
        advantages[:, t] = next_adv
        next_value = values[:, t]
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimates of KL(pi || pi_ref) from samples of pi (Schulman's note).

    With ``log r = log pi_ref(a) - log pi(a)``: ``k1 = -log r`` (unbiased, high variance, can be
    negative; the paper's per-token penalty), ``k2 = (log r)^2 / 2`` (biased, low variance),
    ``k3 = (r - 1) - log r`` (unbiased, low variance, always >= 0).
    """
    log_r = ref_logprobs - logprobs
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r**2
    if kind == "k3":
        return torch.expm1(log_r) - log_r
    raise ValueError(f"kl estimator {kind!r}; use 'k1', 'k2' or 'k3'")


class PolicyLoss(NamedTuple):
    loss: torch.Tensor
    clip_frac: torch.Tensor
    approx_kl: torch.Tensor
    ratio_mean: torch.Tensor


def policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float
) -> PolicyLoss:
    """The clipped surrogate ``-min(rho * A, clip(rho, 1-e, 1+e) * A)``, averaged over tokens.

    Also returns the fraction of tokens where clipping bit and ``approx_kl`` (k3 of old to new,
    as CleanRL logs it).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clip_frac = masked_mean((clipped > unclipped).float(), mask)
        approx_kl = masked_mean(torch.expm1(log_ratio) - log_ratio, mask)
        ratio_mean = masked_mean(ratio, mask)
    return PolicyLoss(loss, clip_frac, approx_kl, ratio_mean)


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``0.5 * max((V - R)^2, (clip(V, V_old +- e) - R)^2)`` over tokens, and the clip fraction.

    Value clipping as in lm-human-preferences and OpenAI baselines (N-details): it keeps the
    value head from leaping on a batch whose returns are far from its predictions. ``clip=None``
    gives the plain squared error.
    """
    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * masked_mean(unclipped, mask), torch.zeros((), device=values.device)
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        frac = masked_mean((clipped > unclipped).float(), mask)
    return loss, frac


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) along the last dimension: (..., V) -> (...)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def explained_variance(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """``1 - Var(target - pred) / Var(target)`` over the masked positions (1 = perfect, <= 0 = useless)."""
    var_y = masked_var(target, mask)
    if var_y.item() == 0:
        return float("nan")
    return float(1.0 - masked_var(target - pred, mask) / var_y)


class FixedKLController:
    """A constant KL coefficient ``beta``."""

    def __init__(self, value: float):
        self.value = float(value)

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. 2019: move ``beta`` so the KL per response approaches ``target``.

    ``e = clip(KL / target - 1, -0.2, 0.2)``, ``beta *= 1 + e * n_steps / horizon``, where
    ``n_steps`` is the number of responses seen since the last update.
    """

    def __init__(self, value: float, target: float, horizon: int):
        super().__init__(value)
        self.target, self.horizon = float(target), int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
