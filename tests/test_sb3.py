"""Stable-Baselines3 on TextBandit: the batched adapter and a plain ``gym.make`` env in DummyVecEnv."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

pytest.importorskip("stable_baselines3")
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor  # noqa: E402

import textbandit  # noqa: E402,F401  (registers TextBandit-v0)
from agents.sb3 import SB3VecEnv, make_sb3_vec_env  # noqa: E402

N, L, EOS = 4, 6, 1


def test_adapter_gives_the_vector_env_numbers(env_kwargs, policy_lm):
    kwargs = env_kwargs(policy=policy_lm)
    venv = gym.make_vec("TextBandit-v0", num_envs=N, **kwargs)
    adapter = make_sb3_vec_env(N, **kwargs)
    rng = np.random.default_rng(0)
    seeds = adapter.seed(9)
    assert seeds == [9, 10, 11, 12]
    obs_a = adapter.reset()
    obs_v, info_v = venv.reset(seed=9)
    assert [i["prompt"] for i in adapter.reset_infos] == list(info_v["prompt"])
    for _ in range(3):
        np.testing.assert_array_equal(obs_a["input_ids"], obs_v["input_ids"])
        actions = rng.integers(0, 28, size=(N, L))
        obs_a, rewards_a, dones, infos = adapter.step(actions)
        obs_v, rewards_v, _, _, info_v = venv.step(actions)
        assert rewards_a.dtype == np.float32 and dones.dtype == bool and dones.all()
        np.testing.assert_allclose(rewards_a, rewards_v, rtol=1e-6)
        assert len(infos) == N
        for i, info in enumerate(infos):
            assert info["TimeLimit.truncated"] is False
            np.testing.assert_array_equal(
                info["terminal_observation"]["input_ids"], info_v["final_obs"][i]["input_ids"]
            )
            np.testing.assert_array_equal(info["token_rewards"], info_v["final_info"]["token_rewards"][i])
            assert info["score"] == pytest.approx(float(info_v["final_info"]["score"][i]))
            assert info["policy_attached"] is True and isinstance(info["prompt"], str)
            assert adapter.reset_infos[i]["prompt"] == info_v["prompt"][i]  # the next episode's prompt


def test_adapter_over_gymnasium_sync_vector_env_gives_the_same_numbers(env_kwargs):
    kwargs = env_kwargs()
    batched = make_sb3_vec_env(N, **kwargs)
    sync = SB3VecEnv(
        SyncVectorEnv([lambda: gym.make("TextBandit-v0", **kwargs)] * N, autoreset_mode=AutoresetMode.SAME_STEP)
    )
    batched.seed(1)
    sync.seed(1)
    np.testing.assert_array_equal(batched.reset()["input_ids"], sync.reset()["input_ids"])
    actions = np.random.default_rng(2).integers(0, 28, size=(N, L))
    a, b = batched.step(actions), sync.step(actions)
    np.testing.assert_allclose(a[1], b[1], atol=1e-5)
    np.testing.assert_array_equal(a[0]["input_ids"], b[0]["input_ids"])
    assert set(a[3][0]) == set(b[3][0])


def test_adapter_rejects_next_step_vector_envs_and_single_envs(env_kwargs):
    kwargs = env_kwargs()
    with pytest.raises(ValueError, match="SAME_STEP"):
        SB3VecEnv(SyncVectorEnv([lambda: gym.make("TextBandit-v0", **kwargs)] * 2))
    with pytest.raises(TypeError, match="DummyVecEnv"):
        SB3VecEnv(gym.make("TextBandit-v0", **kwargs))


def test_adapter_attributes_and_options(env_kwargs, policy_lm):
    adapter = make_sb3_vec_env(N, **env_kwargs())
    assert adapter.get_attr("kl_coef") == [0.1] * N
    adapter.set_attr("kl_coef", 0.5)
    assert adapter.venv.kl_coef == 0.5
    adapter.env_method("set_policy", policy_lm)
    assert adapter.venv.policy is not None
    assert adapter.env_is_wrapped(gym.Wrapper) == [False] * N
    adapter.set_options([{"prompt_index": i} for i in (4, 3, 2, 1)])
    adapter.reset()
    assert [i["prompt_index"] for i in adapter.reset_infos] == [4, 3, 2, 1]
    adapter.set_options({"prompt_indices": [0, 0, 1, 1]})
    adapter.reset()
    assert [i["prompt_index"] for i in adapter.reset_infos] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="indices=None"):
        adapter.set_attr("kl_coef", 0.2, indices=[0])


def test_sb3_ppo_runs_on_the_adapter(env_kwargs):
    torch.manual_seed(0)
    venv = VecMonitor(make_sb3_vec_env(8, **env_kwargs()))
    model = PPO(
        "MultiInputPolicy",
        venv,
        n_steps=16,
        batch_size=64,
        n_epochs=2,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [32]},
    )
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    rewards = model.rollout_buffer.rewards
    assert rewards.shape == (16, 8) and np.isfinite(rewards).all()
    assert len(model.ep_info_buffer) > 0 and all(np.isfinite(e["r"]) and e["l"] == 1 for e in model.ep_info_buffer)
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (8, L)


def test_sb3_ppo_on_a_plain_gym_make_env(env_kwargs):
    venv = DummyVecEnv([lambda: gym.make("TextBandit-v0", **env_kwargs())] * 2)
    model = PPO(
        "MultiInputPolicy",
        venv,
        n_steps=16,
        batch_size=32,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [32]},
    )
    model.learn(total_timesteps=64)
    assert np.isfinite(model.rollout_buffer.rewards).all()
