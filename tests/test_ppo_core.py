"""PPO math against loop references and hand computations; config validation."""

import math

import pytest
import torch

from agents.ppo import PPOConfig
from agents.ppo import functions as F


def gae_loop(rewards, values, mask, gamma, lam):
    """Per-row reference: the textbook recursion over each response's own length."""
    adv = torch.zeros_like(rewards)
    for i in range(rewards.shape[0]):
        T = int(mask[i].sum())
        last = 0.0
        for t in reversed(range(T)):
            next_v = values[i, t + 1].item() if t + 1 < T else 0.0
            delta = rewards[i, t].item() + gamma * next_v - values[i, t].item()
            last = delta + gamma * lam * last
            adv[i, t] = last
    return adv, (adv + values) * mask


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0)])
def test_gae_matches_loop(gamma, lam):
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    lengths = torch.tensor([7, 1, 3, 5, 6])
    mask = (torch.arange(7)[None] < lengths[:, None]).long()
    adv, ret = F.gae(rewards, values, mask, gamma, lam)
    ref_adv, ref_ret = gae_loop(rewards, values * mask, mask, gamma, lam)
    torch.testing.assert_close(adv, ref_adv)
    torch.testing.assert_close(ret, ref_ret)
    assert (adv[mask == 0] == 0).all()


def test_gae_lambda_one_gives_monte_carlo_return():
    rewards = torch.tensor([[0.0, 0.0, 2.0, 0.0]])
    values = torch.tensor([[0.5, 0.1, -0.3, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    adv, ret = F.gae(rewards, values, mask, 1.0, 1.0)
    torch.testing.assert_close(ret, torch.tensor([[2.0, 2.0, 2.0, 0.0]]))


def test_whiten_masked():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, -7.0, -7.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    w = F.whiten(x, mask)
    vals = w[mask.bool()]
    assert abs(vals.mean().item()) < 1e-6
    assert abs(vals.std().item() - 1.0) < 1e-4  # unbiased std, as masked_var is
    assert (w[mask == 0] == 0).all()
    ref = torch.tensor([1.0, 2, 3, 4, 5])
    torch.testing.assert_close(vals, (ref - ref.mean()) / ref.std(), atol=1e-5, rtol=1e-5)
    kept = F.whiten(x, mask, shift_mean=False)[mask.bool()]
    torch.testing.assert_close(kept.mean(), ref.mean() + 0 * kept.mean(), atol=1e-5, rtol=0)
    torch.testing.assert_close(F.masked_var(x, mask), ref.var())


def test_kl_estimators_match_schulman_note():
    lp = torch.tensor([-1.0, -2.0, -0.5])
    ref = torch.tensor([-1.5, -1.0, -0.5])
    log_r = ref - lp
    torch.testing.assert_close(F.kl_estimate(lp, ref, "k1"), -log_r)
    torch.testing.assert_close(F.kl_estimate(lp, ref, "k2"), 0.5 * log_r**2)
    torch.testing.assert_close(F.kl_estimate(lp, ref, "k3"), log_r.exp() - 1 - log_r)
    assert (F.kl_estimate(lp, ref, "k3") >= 0).all()
    with pytest.raises(ValueError, match="k1"):
        F.kl_estimate(lp, ref, "k4")


def test_kl_estimators_are_unbiased_in_expectation():
    # p = N(0, 1) policy, q = N(0.3, 1) reference: KL(p||q) = 0.045
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400_000, generator=g)
    lp, lq = -0.5 * x**2, -0.5 * (x - 0.3) ** 2
    for kind in ("k1", "k3"):
        assert abs(F.kl_estimate(lp, lq, kind).mean().item() - 0.045) < 3e-3
    assert abs(F.kl_estimate(lp, lq, "k2").mean().item() - 0.045) < 3e-3  # tiny bias at this distance


def test_clipped_objective_by_hand():
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.7]]))  # ratios
    adv = torch.tensor([[1.0, 1.0, -2.0, -1.0]])
    mask = torch.tensor([[1, 1, 1, 1]])
    out = F.policy_loss(new, old, adv, mask, clip=0.2)
    # per token: max(-A*r, -A*clip(r)): 1.5,A=1 -> max(-1.5,-1.2)=-1.2 (clipped)
    # 0.5,A=1 -> max(-0.5,-0.8)=-0.5; 1.1,A=-2 -> max(2.2,2.2)=2.2; 0.7,A=-1 -> max(0.7,0.8)=0.8 (clipped)
    assert out.loss.item() == pytest.approx((-1.2 - 0.5 + 2.2 + 0.8) / 4, abs=1e-6)
    assert out.clip_frac.item() == pytest.approx(0.5)
    masked = F.policy_loss(new, old, adv, torch.tensor([[1, 1, 0, 0]]), clip=0.2)
    assert masked.loss.item() == pytest.approx((-1.2 - 0.5) / 2, abs=1e-6)


def test_clipped_objective_gradient_vanishes_when_clipped():
    new = torch.log(torch.tensor([[1.5]])).requires_grad_()
    F.policy_loss(new, torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1), 0.2).loss.backward()
    assert new.grad.item() == 0


def test_value_loss_by_hand():
    v = torch.tensor([[1.0, 0.0]])
    old = torch.tensor([[0.0, 0.0]])
    ret = torch.tensor([[2.0, 1.0]])
    loss, frac = F.value_loss(v, old, ret, torch.ones(1, 2), clip=0.2)
    # token 0: max((1-2)^2, (0.2-2)^2) = 3.24; token 1: (0-1)^2 both = 1
    assert loss.item() == pytest.approx(0.5 * (3.24 + 1.0) / 2)
    assert frac.item() == pytest.approx(0.5)
    plain, _ = F.value_loss(v, old, ret, torch.ones(1, 2), clip=None)
    assert plain.item() == pytest.approx(0.5 * (1.0 + 1.0) / 2)


def test_explained_variance():
    y = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    m = torch.ones(1, 4)
    assert F.explained_variance(y, y, m) == pytest.approx(1.0)
    assert F.explained_variance(torch.zeros_like(y) + y.mean(), y, m) == pytest.approx(0.0, abs=1e-6)


def test_adaptive_kl_controller_moves_toward_target():
    ctl = F.AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(current_kl=12.0, n_steps=100)  # error clipped to +0.2
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 100 / 10000))
    ctl2 = F.AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl2.update(current_kl=5.4, n_steps=1000)  # error -0.1
    assert ctl2.value == pytest.approx(0.1 * (1 - 0.1 * 0.1))
    fixed = F.FixedKLController(0.05)
    fixed.update(100.0, 100)
    assert fixed.value == 0.05
    ctl2.load_state_dict(ctl.state_dict())
    assert ctl2.value == ctl.value


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(batch_size=10, minibatch_size=4), "not divisible into minibatches"),
        (dict(target_kl=0.0), "target_kl"),
        (dict(target_kl=-1.0), "target_kl"),
        (dict(batch_size=8, minibatch_size=4, world_size=3, rank=0), "world_size"),
        (dict(ptx_coef=-1.0), "ptx_coef"),
        (dict(value_model="separate"), "shared"),
        (dict(temperature=0.0), "temperature"),
        (dict(lora_r=4, value_model="reward"), "value_model='shared'"),
        (dict(fsdp=True, lora_r=4), "fsdp"),
        (dict(lora_r=-1), "lora_r"),
        (dict(dist_timeout_s=0), "dist_timeout_s"),
    ],
)
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PPOConfig(**kwargs)


def test_global_batch_arithmetic():
    cfg = PPOConfig(batch_size=64, minibatch_size=16, world_size=4, rank=3)
    assert (cfg.local_batch_size, cfg.local_minibatch_size, cfg.num_minibatches) == (16, 4, 4)
    assert math.isclose(PPOConfig().gamma, 1.0)
