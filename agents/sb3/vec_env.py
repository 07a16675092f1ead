"""A Stable-Baselines3 ``VecEnv`` over a Gymnasium vector env that autoresets in the same step.

The two APIs differ in three ways, each handled here:

- SB3 returns ``dones`` (terminated or truncated) and per-env info dicts; Gymnasium returns
  ``terminated``/``truncated`` and one dict of stacked arrays with ``_key`` masks.
- SB3 expects the finished episode's last observation in ``info["terminal_observation"]``
  and the next episode's first observation as ``obs``: that is Gymnasium's
  ``AutoresetMode.SAME_STEP`` (``info["final_obs"]``, ``info["final_info"]``), so only that
  mode is accepted; NEXT_STEP would hand SB3 a dummy step after every bandit step.
- SB3 seeds lazily (``seed()``/``set_options()`` apply at the next ``reset()``) and keeps the
  reset infos in ``reset_infos``.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn


def unbatch_info(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Env ``i``'s entries of a Gymnasium vector info dict (keys whose ``_key`` mask is set at ``i``)."""
    out = {}
    for key, value in info.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        if isinstance(value, dict):
            out[key] = unbatch_info(value, i)
            continue
        item = value[i]
        if isinstance(item, np.ndarray):
            item = item.copy()
        elif isinstance(item, np.generic):
            item = item.item()  # a Python scalar, as a single env's info has
        out[key] = item
    return out


class SB3VecEnv(VecEnv):
    """Stable-Baselines3's ``VecEnv`` API over a SAME_STEP Gymnasium vector env.

    Args:
        venv: a ``TextBanditVectorEnv`` (``gym.make_vec("TextBandit-v0", num_envs=N, ...)``) or
            any Gymnasium ``VectorEnv`` with ``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``.

    Each step's info for env ``i`` is the single env's step info (``score``, ``kl``,
    ``token_rewards``, ...) plus ``terminal_observation`` and ``TimeLimit.truncated``; the
    observation returned is the next prompt's. ``get_attr``/``set_attr``/``env_method`` act on
    the vector env itself (its sub-envs share their models and settings), e.g.
    ``venv.set_attr("kl_coef", 0.1)`` or ``venv.env_method("set_policy", lm)``; the returned
    list has one (identical) entry per env, as SB3 expects.

    Example::

        venv = SB3VecEnv(gym.make_vec("TextBandit-v0", num_envs=16))
        model = stable_baselines3.PPO("MultiInputPolicy", venv, n_steps=8, batch_size=64)
        model.learn(2_000)
    """

    def __init__(self, venv: VectorEnv):
        if not isinstance(venv, VectorEnv):
            raise TypeError(
                f"venv must be a Gymnasium VectorEnv (gym.make_vec('TextBandit-v0', num_envs=N)), got "
                f"{type(venv).__name__}; for a single env use stable_baselines3's DummyVecEnv"
            )
        mode = venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"the vector env autoresets in mode {mode}; SB3 needs AutoresetMode.SAME_STEP (the final "
                "observation in the info, the next episode's first as obs): use gym.make_vec('TextBandit-v0') "
                "or SyncVectorEnv(..., autoreset_mode=AutoresetMode.SAME_STEP)"
            )
        self.venv = venv  # before super().__init__, which calls get_attr("render_mode")
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self):
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = self._merged_options()
        obs, info = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = [unbatch_info(info, i) for i in range(self.num_envs)]
        self._reset_seeds()  # seeds and options apply to one reset only, as in SB3's DummyVecEnv
        self._reset_options()
        return obs

    def _merged_options(self) -> dict | None:
        """SB3 keeps one options dict per env; a vector env takes one dict for all of them."""
        if not any(self._options):
            return None
        if all(o == self._options[0] for o in self._options):
            return dict(self._options[0])
        if all(set(o) == {"prompt_index"} for o in self._options):  # TextBanditEnv's per-env option
            return {"prompt_indices": [o["prompt_index"] for o in self._options]}
        raise ValueError(
            "per-env reset options differ; the vector env takes one options dict for all envs "
            "(TextBandit accepts {'prompt_index': i} per env, or {'prompt_indices': [...]} for all)"
        )

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async(actions)")
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        self._actions = None
        dones = np.logical_or(terminated, truncated)
        infos = []
        for i in range(self.num_envs):
            if dones[i]:
                env_info = unbatch_info(info.get("final_info", {}), i)
                env_info["terminal_observation"] = info["final_obs"][i]
            else:  # not reached by TextBandit (every step ends its episode)
                env_info = unbatch_info(info, i)
            # Gymnasium 0.26 split done in two; SB3 bootstraps from truncated episodes only
            env_info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            infos.append(env_info)
        self.reset_infos = [unbatch_info(info, i) if dones[i] else {} for i in range(self.num_envs)]
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    # --- attribute access: the sub-envs share one vector env ------------------------------------

    def _n(self, indices: VecEnvIndices) -> int:
        return len(list(self._get_indices(indices)))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.venv, attr_name)
        return [value] * self._n(indices)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if self._n(indices) != self.num_envs:
            raise ValueError(f"{attr_name} is shared by all envs of the vector env; set it with indices=None")
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        if self._n(indices) != self.num_envs:
            raise ValueError(f"{method_name} acts on all envs of the vector env at once; call it with indices=None")
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result] * self.num_envs

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False] * self._n(indices)  # a batched env has no per-env Gymnasium wrappers

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs


def make_sb3_vec_env(num_envs: int, **env_kwargs: Any) -> SB3VecEnv:
    """``SB3VecEnv(gym.make_vec("TextBandit-v0", num_envs=num_envs, **env_kwargs))``."""
    import textbandit  # noqa: F401  (registers TextBandit-v0)

    return SB3VecEnv(gym.make_vec("TextBandit-v0", num_envs=num_envs, **env_kwargs))
