"""``gym.make_vec("TextBandit-v0", num_envs=N)``: N bandits scored together in batched forward passes
(in chunks of ``forward_batch_size`` rows)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.error import ResetNeeded
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from textbandit.env import check_options, check_seed
from textbandit.scorer import EnvAttributes, build_scorer


def _stacked(values: dict[str, np.ndarray], n: int) -> dict[str, Any]:
    """A Gymnasium vector info dict: every key with its ``_key`` mask (all envs have all keys)."""
    info: dict[str, Any] = {}
    for key, value in values.items():
        info[key] = value
        info[f"_{key}"] = np.ones(n, dtype=bool)
    return info


class TextBanditVectorEnv(VectorEnv, EnvAttributes):
    """``num_envs`` copies of ``TextBanditEnv`` that share their models and score in one batch.

    Takes the arguments of ``TextBanditEnv`` plus ``num_envs``. Each step scores all responses
    with batched forward passes of each model (reference, policy, reward model), in chunks of
    ``forward_batch_size`` rows, instead of N passes of one row.

    Autoreset is ``AutoresetMode.SAME_STEP`` (every episode ends after one step, so NEXT_STEP
    would waste every second step): ``step`` returns the *next* prompts as observations and
    puts the finished step's observation and info in ``info["final_obs"]`` and
    ``info["final_info"]`` (the step info of ``TextBanditEnv``, each key stacked over the envs:
    ``(N,)`` scalars, ``(N, L)`` token arrays), as Gymnasium's ``SyncVectorEnv`` does.

    Sub-env ``i`` reset with seed ``s`` draws the same prompts as a ``TextBanditEnv`` reset with
    seed ``s + i``, so the two give the same numbers.

    Example (a causal LM as the policy; its KL to the reference is in the reward)::

    >>> import gymnasium as gym, numpy as np, textbandit
    >>> from transformers import AutoModelForCausalLM
    >>> lm = AutoModelForCausalLM.from_pretrained(textbandit.load_task("default").reference_model)
    >>> envs = gym.make_vec("TextBandit-v0", num_envs=4, policy=lm)
    >>> obs, info = envs.reset(seed=0)
    >>> responses = np.full((4, envs.unwrapped.max_new_tokens), envs.unwrapped.tokenizer.eos_token_id)
    >>> obs, rewards, terminated, truncated, info = envs.step(responses)      # (4, L) token ids
    >>> info["final_info"]["token_rewards"].shape, bool(terminated.all())
    ((4, 24), True)
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any):
        if not (isinstance(num_envs, int) and not isinstance(num_envs, bool) and num_envs > 0):
            raise ValueError(f"num_envs={num_envs!r}; it must be a positive int")
        if render_mode is not None:
            raise ValueError("the vector env does not render; use TextBanditEnv(render_mode='ansi')")
        self.num_envs = num_envs
        self.render_mode = None
        self.scorer = build_scorer(**kwargs)
        self.single_observation_space = self.scorer.observation_space
        self.single_action_space = self.scorer.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs: list[np.random.Generator] | None = None
        self._indices: np.ndarray | None = None

    def _draw(self) -> np.ndarray:
        return np.array([int(rng.integers(len(self.scorer.prompts))) for rng in self._rngs], dtype=np.int64)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        n = self.num_envs
        if seed is None or isinstance(seed, (int, np.integer)):
            seed = check_seed(seed)
            seeds = [None] * n if seed is None else [seed + i for i in range(n)]
        elif isinstance(seed, (list, tuple, np.ndarray)):
            seeds = [check_seed(s) for s in seed]
            if len(seeds) != n:
                raise ValueError(f"got {len(seeds)} seeds for {n} envs; pass one per env or a single int")
        else:
            raise TypeError(f"seed={seed!r}; pass an int, a list of {n} ints (or None), or None")
        if self._rngs is None or seed is not None:
            old = self._rngs or [None] * n
            self._rngs = [
                seeding.np_random(s)[0] if (s is not None or old[i] is None) else old[i] for i, s in enumerate(seeds)
            ]
        options = check_options(options, ("prompt_indices",))
        if "prompt_indices" in options:
            indices = np.asarray(options["prompt_indices"])
            if not np.issubdtype(indices.dtype, np.integer):  # never truncate 1.7 to prompt 1
                raise TypeError(
                    f"prompt_indices must be ints (one prompt index per env), got dtype {indices.dtype}: "
                    f"{options['prompt_indices']!r}"
                )
            indices = indices.astype(np.int64).reshape(-1)
            if indices.shape != (n,) or indices.min() < 0 or indices.max() >= len(self.scorer.prompts):
                raise ValueError(f"prompt_indices must be {n} ints in [0, {len(self.scorer.prompts)})")
            self._indices = indices
        else:
            self._indices = self._draw()
        return self.scorer.observe(self._indices), self._reset_info()

    def _reset_info(self) -> dict[str, Any]:
        prompts = np.array([self.scorer.prompts[i] for i in self._indices], dtype=object)
        return _stacked({"prompt": prompts, "prompt_index": self._indices.copy()}, self.num_envs)

    def step(self, actions):
        if self._indices is None:
            raise ResetNeeded("call reset() before step()")
        n = self.num_envs
        out = self.scorer.score(self._indices, self.scorer.check_actions(actions, n))
        rewards = out.pop("reward")
        out["policy_attached"] = np.full(n, self.scorer.policy is not None)
        final = self.scorer.observe(self._indices)
        final_obs = np.empty(n, dtype=object)
        for i in range(n):
            final_obs[i] = {k: v[i] for k, v in final.items()}

        self._indices = self._draw()  # SAME_STEP autoreset: every episode ended
        info = self._reset_info()
        info.update(_stacked({"final_obs": final_obs, "final_info": _stacked(out, n)}, n))
        terminated = np.ones(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        return self.scorer.observe(self._indices), rewards, terminated, truncated, info
