"""``TextBandit-v0``: the RL half of RLHF as a one-step Gymnasium environment."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded

from textbandit.scorer import EnvAttributes, build_scorer

# Info keys whose values are per-token arrays padded to max_new_tokens.
TOKEN_KEYS = ("token_kl", "logprobs", "ref_logprobs", "response_mask", "token_rewards")
ARRAY_KEYS = TOKEN_KEYS + ("score_parts",)  # arrays per step (score_parts: one score per reward source)


def check_seed(seed):
    """``seed`` as a Python int (NumPy ints too) or None; anything else is a ``TypeError``."""
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return int(seed)
    raise TypeError(f"seed={seed!r}; it must be an int or None, got {type(seed).__name__}")


def check_options(options: dict | None, known: tuple[str, ...]) -> dict:
    """``options`` (a dict or None) after refusing keys the environment does not know."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict or None, got {type(options).__name__}")
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}; this environment takes {list(known)}")
    return options


def render_text(prompt: str, response: str, reward: float) -> str:
    return f"prompt:   {prompt}\nresponse: {response}\nreward:   {reward:+.4f}\n"


class TextBanditEnv(gym.Env, EnvAttributes):
    """A prompt in, a token sequence out, a reward back: RLHF's RL problem as a bandit.

    ## Description
    Each episode is one step, as in InstructGPT: the environment presents a customer's prompt;
    the agent answers with a response of up to ``max_new_tokens`` tokens; a reward model scores
    ``prompt ++ response`` and the episode ends. A per-token KL penalty to the reference (SFT)
    model keeps the policy from drifting to text that fools the reward model.

    ## Action Space
    ``MultiDiscrete([V] * L)`` with ``V = len(tokenizer)``, ``L = max_new_tokens``: the
    response's token ids. The response ends at its first EOS token (kept); what follows is
    padding and ignored. No EOS within ``L`` tokens is a truncated response
    (``info["truncated_response"]``), penalised by ``missing_eos_penalty`` when that is set.

    ## Observation Space
    ``Dict(input_ids=Box(0, V-1, (P,), int64), attention_mask=Box(0, 1, (P,), int64))``: the
    prompt, left-padded to ``P = max_prompt_len`` tokens. Its text is ``info["prompt"]``.

    ## Rewards
    ``score - kl_coef * sum_t KL_t`` with ``KL_t = log pi(a_t|.) - log pi_ref(a_t|.)`` over the
    response's tokens: the paper's RL objective for one sample. ``pi`` is the attached policy
    (logits divided by ``temperature``, as for the reference). **Without a policy** the
    policy is taken to be the reference: KL is 0, the reward is the score, and
    ``info["policy_attached"]`` is False.

    Step info (arrays padded to ``L``): ``score``, ``score_parts`` (each reward source's score,
    NaN where a function returned None; named by ``reward_names``), ``kl``, ``token_kl``, ``logprobs``,
    ``ref_logprobs``, ``response_mask``, ``token_rewards`` (``-kl_coef*KL_t`` plus ``score`` on
    the last response token: what GAE consumes), ``prompt``, ``response``,
    ``truncated_response``, ``policy_attached`` and, where the task has a gold labeler,
    ``gold_score`` (for evaluation only: no learner may train on it).

    ## Starting State
    A prompt drawn uniformly from the prompt set with ``self.np_random``
    (``reset(options={"prompt_index": i})`` picks prompt ``i``).

    ## Episode End
    After one step: ``terminated=True``, ``truncated=False``.

    ## Arguments
    - ``task``: ``"default"`` (the shipped task), a path to a built task folder, or a
      ``textbandit.task.Task`` (its prompts, tokenizer, models, settings and gold judge); any
      component given below replaces the task's. ``None``: no task (pass all four components).
    - ``split``: the task's split to draw prompts from: train, validation or test.
    - ``reward_model``: a ``textbandit.reward_model.RewardModel``, a Hugging Face
      ``AutoModelForSequenceClassification`` with one label (e.g. trained by TRL's
      ``RewardTrainer``), or a local path to either (:mod:`textbandit.rewards`).
    - ``reward_fns``: a reward function with TRL's signature ``fn(prompts, completions, **kwargs)
      -> list[float | None]`` (or a ``"module:function"`` string), or a list of them; each gets the
      prompts' other dataset columns, ``completion_ids`` and ``ended_with_eos`` as keyword
      arguments, once per step. Without ``reward_model`` they replace the task's reward model;
      with it they score beside it.
    - ``reward_weights``: one weight per reward source (the reward model first, when there is
      one); the score is the weighted sum over the sources that apply (``None`` does not).
    - ``reference_model``: the SFT model, a Hugging Face causal LM or a local path.
    - ``tokenizer``: a Hugging Face tokenizer or a path; its pad token must differ from EOS.
    - ``prompts``: a list of strings, a ``datasets.Dataset`` or a data file: our JSONL (``prompt``
      field) or TRL's formats, conversational ones rendered with the tokenizer's chat template
      (:mod:`textbandit.data`); every other column goes to the reward functions.
    - ``policy``: a causal LM or any object with ``response_logprobs`` (``textbandit.policy``).
    - ``kl_coef``, ``max_prompt_len``, ``max_new_tokens``: the task's when None.
    - ``temperature``: the sampling temperature; policy and reference logits are divided by it.
    - ``missing_eos_penalty``: subtracted from the score of a response without EOS (``None``,
      the default: no penalty; otherwise a finite number >= 0).
    - ``prompt_truncation``: ``"error"`` (default) refuses prompts longer than
      ``max_prompt_len`` at construction; ``"left"`` keeps their last ``max_prompt_len`` tokens.
    - ``gold_fn``: a reward function (TRL's signature) that judges for evaluation only, in
      ``info["gold_score"]`` (the task's judge when the prompts are the task's).
    - ``device``, ``torch_dtype``: where and in what precision the models run.
    - ``forward_batch_size``: rows per forward pass of the reference and reward models (and of
      a plain causal-LM policy). Rows are sorted by length and each chunk is cut to its own
      longest prompt and response, so smaller chunks compute less padding; they also bound the
      memory of the (rows, L, vocab) logits. ``None``: the whole batch in one pass; ``"auto"``
      (default): 16 rows on a CPU, the whole batch elsewhere. Trimming changes results only by
      float rounding (about 1e-7); a policy object with ``response_logprobs`` is always given
      the batch exactly as the observation and action lay it out, so a learner that scores
      with the same code gets bit-identical log-probs (``agents.ppo`` relies on this).

    The env's public attributes (``kl_coef``, settable; ``tokenizer``, ``prompts``, ``device``,
    ``temperature``, ``max_prompt_len``, ``max_new_tokens``, ``reward_model``, ``reward_fns``,
    ``reward_names``, ``reward_weights``, ``reference_model``, ``policy``, ``gold_fn``;
    ``set_policy``) are all an agent needs of it.

    ## Example
    >>> import gymnasium as gym, textbandit
    >>> env = gym.make("TextBandit-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> bool(terminated), bool(abs(info["score"] - env.unwrapped.kl_coef * info["kl"] - reward) < 1e-6)
    (True, True)

    A reward function instead of the reward model (TRL's signature; see :mod:`textbandit.rewards`):

    >>> short = lambda prompts, completions, **kwargs: [float(len(c.split()) <= 5) for c in completions]
    >>> env = gym.make("TextBandit-v0", reward_fns=short)
    >>> _ = env.reset(seed=0)
    >>> info = env.step(env.action_space.sample())[-1]
    >>> env.unwrapped.reward_names, info["score"] in (0.0, 1.0)
    (['<lambda>'], True)

    ## Version History
    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # fps: Gymnasium asks; text has no frame rate

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r}; supported: {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.scorer = build_scorer(**kwargs)
        self.observation_space = self.scorer.observation_space
        self.action_space = self.scorer.action_space
        self._index: int | None = None
        self._last: str | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=check_seed(seed))
        options = check_options(options, ("prompt_index",))
        if "prompt_index" in options:
            index = options["prompt_index"]
            if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
                raise TypeError(
                    f"prompt_index={index!r}; it must be an int (the index of a prompt), got {type(index).__name__}"
                )
            index = int(index)
            if not 0 <= index < len(self.scorer.prompts):
                raise ValueError(f"prompt_index={index} is outside [0, {len(self.scorer.prompts)})")
        else:
            index = int(self.np_random.integers(len(self.scorer.prompts)))
        self._index = index
        obs = self.scorer.observe(np.array([index]))
        return {k: v[0] for k, v in obs.items()}, {"prompt": self.scorer.prompts[index], "prompt_index": index}

    def step(self, action):
        if self._index is None:
            raise ResetNeeded("call reset() before step(): each episode is one step")
        idx = np.array([self._index])
        out = self.scorer.score(idx, self.scorer.check_actions(action, n=1))
        obs = {k: v[0] for k, v in self.scorer.observe(idx).items()}  # fresh arrays, same prompt
        self._index = None
        info = {
            k: (v[0] if k in ARRAY_KEYS or v.dtype == object else v[0].item()) for k, v in out.items() if k != "reward"
        }
        info["policy_attached"] = self.scorer.policy is not None
        reward = float(out["reward"][0])
        self._last = render_text(info["prompt"], info["response"], reward)
        # truncated=False: a bandit ends after one step by design, never by a time limit
        return obs, reward, True, False, info

    def render(self):
        if self.render_mode == "ansi":
            return self._last or ""
        return None
