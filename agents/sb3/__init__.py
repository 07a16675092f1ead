"""Stable-Baselines3 adapters for TextBandit.

SB3 cannot take a Gymnasium ``VectorEnv``: it has its own ``VecEnv`` API (``step_async`` /
``step_wait``, ``dones``, a list of per-env info dicts with ``terminal_observation``).
:class:`SB3VecEnv` wraps the batched ``TextBanditVectorEnv`` (or any Gymnasium vector env in
``AutoresetMode.SAME_STEP``) in that API, so SB3 algorithms keep the one-forward-per-model
batching::

    from stable_baselines3 import PPO
    from agents.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env(num_envs=64)            # the embedded default task
    PPO("MultiInputPolicy", venv, n_steps=8).learn(10_000)

A single env from ``gym.make("TextBandit-v0")`` needs no adapter: SB3 wraps it in its own
``DummyVecEnv`` (N forward passes per step instead of one).
"""

from agents.sb3.vec_env import SB3VecEnv, make_sb3_vec_env

__all__ = ["SB3VecEnv", "make_sb3_vec_env"]
