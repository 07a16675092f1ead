"""Reward modelling: comparison collection, the ranking loss and the trainer.

- :func:`collect_comparisons`: K samples per prompt from the SFT model, ranked by labelers.
- :func:`kwise_ranking_loss` / :func:`pairwise_loss`: InstructGPT's loss, K-wise and K = 2.
- :class:`RewardConfig`, :func:`train_reward_model`: train a
  :class:`textbandit.reward_model.RewardModel` from an SFT model.
"""

from agents.reward.collect import collect_comparisons
from agents.reward.config import RewardConfig
from agents.reward.loss import kwise_ranking_loss, pairwise_loss, ranked_pairs
from agents.reward.trainer import train_reward_model

__all__ = [
    "collect_comparisons",
    "RewardConfig",
    "train_reward_model",
    "kwise_ranking_loss",
    "pairwise_loss",
    "ranked_pairs",
]
