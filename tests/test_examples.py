"""The example custom agent (RLOO) trains in TextBandit-v0 through gym.make_vec (plus the project's
sampler and log-prob helper, as its docstring says)."""

import copy
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny import PROMPTS, tiny_lm, tiny_tokenizer  # noqa: E402

from agents.examples.rloo import rloo_advantages, train_rloo  # noqa: E402
from agents.examples.toy import KeywordReward  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def test_rloo_advantages_leave_one_out():
    adv = rloo_advantages(torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 4.0]), k=3)
    torch.testing.assert_close(adv, torch.tensor([1 - 2.5, 2 - 2.0, 3 - 1.5, 0 - 2.0, 0 - 2.0, 4 - 0.0]))


def test_rloo_learns_keyword_bandit():
    tok = tiny_tokenizer()
    ref = tiny_lm(len(tok))
    lm = copy.deepcopy(ref)
    envs = gym.make_vec(
        "TextBandit-v0",
        num_envs=32,
        policy=lm,
        task=None,
        tokenizer=tok,
        prompts=PROMPTS,
        reward_model=KeywordReward(tok.convert_tokens_to_ids("fish")),
        reference_model=ref,
        max_prompt_len=8,
        max_new_tokens=6,
        kl_coef=0.0,
    )
    history = train_rloo(lm, envs, k=4, iterations=40, lr=3e-3)
    start, end = history[0]["score"], np.mean([h["score"] for h in history[-5:]])
    assert start < 1.0 and end > 2.0, (start, end)


def test_rloo_refuses_bad_group_size():
    tok = tiny_tokenizer()
    lm = tiny_lm(len(tok))
    envs = gym.make_vec(
        "TextBandit-v0",
        num_envs=6,
        policy=lm,
        task=None,
        tokenizer=tok,
        prompts=PROMPTS,
        reward_model=KeywordReward(5),
        reference_model=lm,
        max_prompt_len=8,
        max_new_tokens=4,
    )
    with pytest.raises(ValueError, match="multiple of k"):
        train_rloo(lm, envs, k=4, iterations=1)
