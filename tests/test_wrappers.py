"""TextActions: the response as text in, the prompt text in the observation; Gymnasium's checker passes."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import MAX_NEW_TOKENS as L
from gymnasium.utils.env_checker import check_env

import textbandit  # noqa: F401
from textbandit.wrappers import TextActions, encode_actions


def test_check_env_passes_with_no_warning_but_the_wrapped_one(env_kwargs):
    env = TextActions(gym.make("TextBandit-v0", **env_kwargs()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    others = [str(w.message) for w in caught if "different from the unwrapped version" not in str(w.message)]
    assert not others, others


def test_text_in_and_out(env_kwargs, tokenizer):
    env = TextActions(gym.make("TextBandit-v0", **env_kwargs()))
    obs, info = env.reset(seed=0)
    assert obs["prompt"] == info["prompt"]
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step("the cat")
    assert terminated and info["response"] == "the cat" and not info["truncated_response"]
    assert env.observation_space.contains(obs)
    direct = gym.make("TextBandit-v0", **env_kwargs())  # the same as the token ids with an EOS
    direct.reset(seed=0)
    ids = tokenizer("the cat", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert direct.step(np.array(ids + [tokenizer.pad_token_id] * (L - len(ids))))[1] == pytest.approx(reward)
    env.reset(seed=0)
    info = env.step("the cat sees a big red fish")[-1]  # 7 tokens: cut to L, no EOS
    assert info["truncated_response"] and info["response"] == "the cat sees a big red"
    with pytest.raises(TypeError, match="a text action must be a str"):
        env.step(np.zeros(L, dtype=np.int64))


def test_encode_actions_feeds_the_vector_env(env_kwargs, tokenizer):
    envs = gym.make_vec("TextBandit-v0", num_envs=2, **env_kwargs())
    envs.reset(seed=0)
    actions = encode_actions(tokenizer, ["a cat", ""], L)
    assert actions.shape == (2, L) and actions[1, 0] == tokenizer.eos_token_id  # an empty response: just the EOS
    info = envs.step(actions)[-1]["final_info"]
    assert list(info["response"]) == ["a cat", ""]
