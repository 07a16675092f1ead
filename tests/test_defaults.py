"""The no-argument environment serves the shipped default task: its SFT and reward models,
tokenizer, prompts and gold labeler, offline."""

import gymnasium as gym
import numpy as np
import pytest

import textbandit  # noqa: F401  (registers TextBandit-v0)
from textbandit.task import load_task

pytestmark = pytest.mark.skipif(
    load_task("default").reward_model is None,
    reason="the default task's models are not exported yet (textbandit pipeline --export-defaults)",
)


def test_no_argument_env_scores_with_the_shipped_models():
    env = gym.make("TextBandit-v0")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["prompt"].startswith("instruction :")
    tok = env.unwrapped.tokenizer
    eos = tok.eos_token_id
    words = tok("the cat is red .", add_special_tokens=False).input_ids
    action = np.full(env.action_space.shape, tok.pad_token_id, dtype=np.int64)
    action[: len(words)] = words
    action[len(words)] = eos
    _, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated
    assert info["response"] == "the cat is red ."
    assert np.isfinite(reward) and 0.0 <= info["gold_score"] <= 1.0
    assert not info["policy_attached"] and info["kl"] == 0.0


def test_shipped_splits_are_served_and_differ():
    train = gym.make("TextBandit-v0").unwrapped.prompts
    test = gym.make("TextBandit-v0", split="test").unwrapped.prompts
    assert len(train) > len(test) > 0 and train[: len(test)] != test  # customers are split, not prompts shared
