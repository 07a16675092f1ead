"""A toy stand-in reward model, for tests and demos of agents without the default task.

``KeywordReward(token_id)`` scores ``prompt ++ response`` by how many times ``token_id`` occurs
among its attended tokens: a bandit whose optimum (say the keyword, often) a few PPO or RLOO
iterations find. It follows the reward-model contract of docs/architecture.md (``score``).

Example::

    envs = gym.make_vec("TextBandit-v0", num_envs=16, task=None, reward_model=KeywordReward(5),
                        reference_model=lm, tokenizer=tok, prompts=["say one", "list two fish ?"])
"""

from __future__ import annotations

import torch
from torch import nn


class KeywordReward(nn.Module):
    """``score = count(token_id in the attended sequence) * scale``; a stand-in reward model."""

    def __init__(self, token_id: int, scale: float = 1.0):
        super().__init__()
        self.token_id, self.scale = token_id, scale

    def score(self, input_ids, attention_mask, position_ids=None) -> torch.Tensor:
        hits = ((input_ids == self.token_id) & attention_mask.bool()).float()
        return hits.sum(dim=1) * self.scale
