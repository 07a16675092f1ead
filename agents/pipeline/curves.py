"""Gold score, proxy score and KL of a PPO run on fixed held-out prompts, every few iterations.

The over-optimisation finding compares where the gold score peaks with where it ends. Measured on
each iteration's own rollout batch (64 fresh training prompts a step), the curve is so noisy that
the maximum of it alone sits a few hundredths above its level, which is the size of the drop the
finding looks for. So the pipeline measures the curve here instead: the same held-out prompts
(validation customers) and the same sampling seed at every point, so that two points differ by
what the policy learned and little else. Point 0 is the SFT model the run starts from.
"""

from __future__ import annotations

import numpy as np

from agents.pipeline.samples import sample_and_score
from textbandit.vector_env import TextBanditVectorEnv


class HeldOutCurve:
    """A ``train(callback=...)`` hook: every ``every`` iterations (and at the last), sample the
    policy on ``n_prompts`` fixed prompts of the task's ``split`` and record the means of the env's
    ``score``, ``kl`` (to the task's reference, the SFT model) and ``gold_score``.

    ``env`` holds the env's other settings (the PPO run's ``temperature`` and ``missing_eos_penalty``,
    so ``score`` is the proxy PPO maximises; ``device``). ``points`` holds ``{"iteration", "score",
    "kl", "gold"}`` lists, one entry per measurement.
    """

    def __init__(self, task, split: str, n_prompts: int, every: int, last: int, seed: int, batch_size: int = 64, **env):
        if every < 1 or n_prompts < 1:
            raise ValueError(f"every={every}, n_prompts={n_prompts}: both must be >= 1")
        self.envs = TextBanditVectorEnv(num_envs=min(batch_size, n_prompts), task=task, split=split, **env)
        if self.envs.gold_fn is None:
            raise ValueError("the curve's env has no gold labeler: use a task with a gold judge")
        n_available = len(self.envs.prompts)
        rng = np.random.default_rng([seed, 81])
        self.indices = np.sort(rng.choice(n_available, size=min(n_prompts, n_available), replace=False))
        self.every, self.last, self.seed = every, last, seed
        self.points: dict[str, list[float]] = {"iteration": [], "score": [], "kl": [], "gold": []}

    def measure(self, iteration: int, model) -> None:
        """Record one point for ``model`` (a causal LM) at ``iteration``."""
        temperature = self.envs.temperature  # the env scores at it, so sample at it
        s = sample_and_score(self.envs, model, self.indices, temperature, seed=self.seed)
        for key, value in (
            ("iteration", iteration),
            ("score", s.score.mean()),
            ("kl", s.kl.mean()),
            ("gold", s.gold.mean()),
        ):
            self.points[key].append(float(value))

    def __call__(self, iteration: int, stats: dict, policy) -> None:
        if iteration % self.every == 0 or iteration == self.last:
            self.measure(iteration, policy.lm)
