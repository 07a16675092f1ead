"""PPO for RLHF in ``TextBandit-v0``: a causal LM with a value head, trained against a reward model
with a per-token KL penalty to the SFT model (InstructGPT), optionally with PPO-ptx.

Public API::

    from agents.ppo import PPOConfig, PolicyWithValueHead, train
    result = train(PPOConfig(total_iterations=50, output_dir="runs/ppo"))

Command line: ``python -m agents.ppo --total-iterations 50 --output-dir runs/ppo``.
"""

from agents.ppo.config import PPOConfig
from agents.ppo.learner import train
from agents.ppo.policy import PolicyWithValueHead

__all__ = ["PPOConfig", "PolicyWithValueHead", "train"]
