"""The no-argument environment serves the shipped default task: its SFT and reward models,
tokenizer, prompts and gold labeler, offline."""

import gymnasium as gym
import numpy as np
import pytest

import textbandit
from textbandit import defaults

pytestmark = pytest.mark.skipif(
    not (defaults.ASSETS / "reward_model").exists(),
    reason="the default task's models are not exported yet (textbandit pipeline --export-defaults)",
)


def test_no_argument_env_scores_with_the_shipped_models():
    env = gym.make("TextBandit-v0")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["prompt"].startswith("instruction :")
    core = env.unwrapped.core
    eos = core.eos_token_id
    words = core.tokenizer("the cat is red .", add_special_tokens=False).input_ids
    action = np.full(env.action_space.shape, core.pad_token_id, dtype=np.int64)
    action[: len(words)] = words
    action[len(words)] = eos
    _, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated
    assert info["response"] == "the cat is red ."
    assert np.isfinite(reward) and 0.0 <= info["gold_score"] <= 1.0
    assert not info["policy_attached"] and info["kl"] == 0.0


def test_shipped_splits_are_served_and_differ():
    train = gym.make("TextBandit-v0").unwrapped.core.prompts
    test = gym.make("TextBandit-v0", split="test").unwrapped.core.prompts
    assert len(train) > len(test) > 0 and train[: len(test)] != test  # customers are split, not prompts shared
