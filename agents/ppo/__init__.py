"""PPO for RLHF in ``TextBandit-v0``: a causal LM with a value head, trained against a reward model
with a per-token KL penalty to the SFT model (InstructGPT), optionally with PPO-ptx.

Public API: :class:`PPOConfig`, :func:`train`, :class:`PolicyWithValueHead`. Two iterations on
the shipped default task (its SFT model is the start and the KL reference)::

    >>> import tempfile
    >>> from agents.ppo import PPOConfig, train
    >>> cfg = PPOConfig(batch_size=8, minibatch_size=4, total_iterations=2, out=tempfile.mkdtemp(),
    ...                 device="cpu", progress=False, tensorboard=False)
    >>> result = train(cfg)
    >>> [h["iteration"] for h in result["history"]], abs(result["history"][0]["env/kl"]) < 1e-5
    ([1, 2], True)
    >>> result["policy"].save_pretrained(f"{cfg.out}/final")  # loads with AutoModelForCausalLM

Command line: ``python -m agents.ppo --total-iterations 50 --out runs/ppo``.
"""

from agents.ppo.config import PPOConfig
from agents.ppo.learner import train
from agents.ppo.policy import PolicyWithValueHead

__all__ = ["PPOConfig", "PolicyWithValueHead", "train"]
