"""The batched scorer behind ``TextBanditEnv`` and ``TextBanditVectorEnv``.

``BatchScorer`` holds the models, the tokenizer and the tokenized prompts, and scores a batch of
responses with batched forward passes (in chunks of ``forward_batch_size`` rows): reference and
policy log-probs, reward-model scores, then the reward of :func:`textbandit.scoring.rlhf_reward`.
The single env uses it with N = 1 and the vector env with N = num_envs: the same code path, so
both give the same numbers up to the float rounding of different batch shapes (about 1e-7).
:func:`build_scorer` resolves the env's arguments against its task (:mod:`textbandit.task`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from textbandit.data import load_prompt_set
from textbandit.layout import check_tokenizer, ends_with_eos, join, left_pad, response_mask
from textbandit.loading import load
from textbandit.policy import CausalLMPolicy, as_policy, is_causal_lm, max_positions, vocab_size_of
from textbandit.rewards import (
    FunctionReward,
    ModelReward,
    Responses,
    Rewards,
    SequenceClassifierReward,
    is_sequence_classifier,
    load_reward_model,
)
from textbandit.runtime import resolve_device
from textbandit.scoring import response_logprobs, rlhf_reward
from textbandit.task import GoldFn, Task, load_task

# The settings of an env with no task (task=None): a task sets its own (textbandit.task.Task).
GENERIC_SETTINGS = {"kl_coef": 0.05, "max_prompt_len": 64, "max_new_tokens": 32}


def is_finite_number(value) -> bool:
    """A real number (int, float, numpy scalar; not a bool) that is neither NaN nor infinite."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class Settings:
    """Validated scalar settings of an environment (see ``TextBanditEnv`` for each)."""

    kl_coef: float
    max_prompt_len: int
    max_new_tokens: int
    temperature: float
    missing_eos_penalty: float | None
    prompt_truncation: str

    def __post_init__(self):
        if not (is_finite_number(self.kl_coef) and self.kl_coef >= 0):
            raise ValueError(f"kl_coef={self.kl_coef!r}; it must be a finite number >= 0 (0 disables the KL penalty)")
        for name in ("max_prompt_len", "max_new_tokens"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                raise ValueError(f"{name}={value!r}; it must be a positive int")
        if not (is_finite_number(self.temperature) and self.temperature > 0):
            raise ValueError(
                f"temperature={self.temperature!r}; it must be a finite number > 0 (use the sampler's temperature)"
            )
        if self.missing_eos_penalty is not None and not (
            is_finite_number(self.missing_eos_penalty) and self.missing_eos_penalty >= 0
        ):
            raise ValueError(
                f"missing_eos_penalty={self.missing_eos_penalty!r}; it must be None (no penalty) or a finite number "
                ">= 0, subtracted from the score of a response without EOS"
            )
        if self.prompt_truncation not in ("error", "left"):
            raise ValueError(
                f"prompt_truncation={self.prompt_truncation!r}; use 'error' (refuse long prompts) "
                "or 'left' (keep the last max_prompt_len tokens)"
            )


def _load_tokenizer(tokenizer):
    if isinstance(tokenizer, str) or hasattr(tokenizer, "__fspath__"):
        from transformers import AutoTokenizer

        tokenizer = load(AutoTokenizer.from_pretrained, tokenizer, "tokenizer", needs=None)
    if not (callable(tokenizer) and hasattr(tokenizer, "eos_token_id") and hasattr(tokenizer, "pad_token_id")):
        raise TypeError(
            "tokenizer must be a Hugging Face tokenizer or a local path to one (loadable with "
            f"transformers.AutoTokenizer), got {type(tokenizer).__name__}"
        )
    check_tokenizer(tokenizer)
    return tokenizer


def _load_causal_lm(model, device, dtype):
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        from transformers import AutoModelForCausalLM

        model = load(AutoModelForCausalLM.from_pretrained, model, "reference_model", dtype=dtype)
    if not is_causal_lm(model):
        raise TypeError(
            "reference_model must be a Hugging Face causal LM (e.g. AutoModelForCausalLM) or a local path to one, "
            f"got {type(model).__name__}"
        )
    return model.to(device).eval()


def _reward_model_source(model, device, dtype, pad_token_id):
    """The reward-model source of ``model`` (a path, ours, a sequence classifier, or a module with ``score``)."""
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        model = load_reward_model(model, dtype)
    if is_sequence_classifier(model):
        return model, SequenceClassifierReward(model.to(device).eval(), pad_token_id)
    score = getattr(model, "score", None)
    if not callable(score) or isinstance(score, torch.nn.Module) or isinstance(model, type):
        raise TypeError(
            "reward_model must be a textbandit.reward_model.RewardModel, a Hugging Face "
            "AutoModelForSequenceClassification with one label, a local path to either, or a module with "
            f"score(input_ids, attention_mask, position_ids) -> (N,) rewards; got {type(model).__name__}"
            + (" (its .score is a layer, not a scoring method)" if isinstance(score, torch.nn.Module) else "")
        )
    model = model.to(device).eval() if isinstance(model, torch.nn.Module) else model
    return model, ModelReward(model)


def _as_list(reward_fns) -> list:
    if reward_fns is None:
        return []
    if callable(reward_fns) or isinstance(reward_fns, str):
        return [reward_fns]
    if isinstance(reward_fns, (list, tuple)):
        return list(reward_fns)
    raise TypeError(
        f"reward_fns must be a reward function, a 'module:function' string, or a list of them; "
        f"got {type(reward_fns).__name__}"
    )


def _check_finite(values: torch.Tensor, source: str, what: str) -> None:
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        rows = torch.nonzero(bad.reshape(len(values), -1).any(dim=1)).flatten().tolist()
        raise ValueError(
            f"{source} returned non-finite {what} (NaN or inf) for rows {rows[:10]} of the batch; a "
            "reward built on them would be meaningless (check the model's dtype and weights)"
        )


AUTO_CPU_FORWARD_BATCH = 16  # measured with benchmarks/env_throughput.py on 2 cores: 16 beat 8, 32 and 64


class BatchScorer:
    """Models, tokenizer and tokenized prompts, plus batched scoring. See ``TextBanditEnv``."""

    def __init__(
        self,
        *,
        reward_model,
        reference_model,
        tokenizer,
        prompts,
        reward_fns=None,
        reward_weights=None,
        policy=None,
        settings: Settings,
        gold_fn: GoldFn | None = None,
        device: str | torch.device = "cpu",
        torch_dtype: torch.dtype | None = None,
        forward_batch_size: int | str | None = "auto",
    ):
        if not (
            forward_batch_size is None
            or forward_batch_size == "auto"
            or (
                isinstance(forward_batch_size, int)
                and not isinstance(forward_batch_size, bool)
                and forward_batch_size > 0
            )
        ):
            raise ValueError(
                f"forward_batch_size={forward_batch_size!r}; use a positive int, None for whole batches, or 'auto'"
            )
        self.settings = settings
        self.device = resolve_device(device)
        if forward_batch_size == "auto":  # on a CPU, short length-sorted chunks waste least on padding
            forward_batch_size = AUTO_CPU_FORWARD_BATCH if self.device.type == "cpu" else None
        self.forward_batch_size = forward_batch_size
        self.tokenizer = _load_tokenizer(tokenizer)
        self.pad_token_id = self.tokenizer.pad_token_id
        self.eos_token_id = self.tokenizer.eos_token_id
        self.vocab_size = len(self.tokenizer)
        if torch_dtype is None and self.device.type == "cpu":
            torch_dtype = torch.float32  # shipped weights are fp16; CPUs compute in fp32
        self.reference_model = _load_causal_lm(reference_model, self.device, torch_dtype)
        sources, self.reward_model = [], None
        if reward_model is not None:
            self.reward_model, source = _reward_model_source(reward_model, self.device, torch_dtype, self.pad_token_id)
            sources.append(source)
        self.reward_fns = _as_list(reward_fns)
        self.rewards = Rewards(sources + [FunctionReward(fn) for fn in self.reward_fns], reward_weights)
        self.ref_vocab_size = vocab_size_of(self.reference_model)
        models = [("reference model", self.reference_model)]
        for what, model in models + ([("reward model", self.reward_model)] if self.reward_model is not None else []):
            vocab = vocab_size_of(model)
            if vocab is not None and vocab < self.vocab_size:
                raise ValueError(
                    f"the {what}'s vocabulary ({vocab}) is smaller than the tokenizer's ({self.vocab_size}): token "
                    "ids past its embedding would index out of range; pass the tokenizer the model was trained with"
                )
            self._check_positions(what, model)
        self.gold_fn = gold_fn
        self.gold = FunctionReward(gold_fn, "gold_fn") if gold_fn is not None else None
        self.policy = None
        self.set_policy(policy)
        self.prompt_set = load_prompt_set(prompts, self.tokenizer)
        self.prompts = self.prompt_set.texts
        self.prompt_ids, self.prompt_mask = self._tokenize_prompts(self.prompts)

        P, L, V = settings.max_prompt_len, settings.max_new_tokens, self.vocab_size
        self.observation_space = spaces.Dict(
            {
                "input_ids": spaces.Box(0, V - 1, shape=(P,), dtype=np.int64),
                "attention_mask": spaces.Box(0, 1, shape=(P,), dtype=np.int64),
            }
        )
        self.action_space = spaces.MultiDiscrete(np.full(L, V, dtype=np.int64))

    # --- set-up -----------------------------------------------------------------------------

    def set_policy(self, policy) -> None:
        """Attach the policy whose KL to the reference the reward penalises (``None`` detaches)."""
        policy = as_policy(policy, self.pad_token_id)
        vocab = vocab_size_of(policy) if policy is not None else None
        if vocab is not None and self.ref_vocab_size is not None and vocab != self.ref_vocab_size:
            raise ValueError(
                f"the policy's vocabulary ({vocab}) differs from the reference model's ({self.ref_vocab_size}); "
                "initialise the policy from the reference (SFT) model or use the same tokenizer"
            )
        if policy is not None:
            self._check_positions("policy", policy)
        self.policy = policy

    def _check_positions(self, what: str, model) -> None:
        """Refuse a model with fewer positions than a prompt plus a response can take."""
        n, s = max_positions(model), self.settings
        if n is not None and s.max_prompt_len + s.max_new_tokens > n:
            raise ValueError(
                f"max_prompt_len + max_new_tokens = {s.max_prompt_len} + {s.max_new_tokens} = "
                f"{s.max_prompt_len + s.max_new_tokens} tokens, more than the {what}'s {n} positions; lower "
                "max_prompt_len or max_new_tokens (the default task needs 32 + 24)"
            )

    def _tokenize_prompts(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        P = self.settings.max_prompt_len
        encoded = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        for i, toks in enumerate(encoded):
            if len(toks) > P and self.settings.prompt_truncation == "error":
                raise ValueError(
                    f"prompt {i} has {len(toks)} tokens, more than max_prompt_len={P}: {prompts[i][:80]!r}...; "
                    "raise max_prompt_len, drop long prompts, or pass prompt_truncation='left' to keep "
                    "each prompt's last max_prompt_len tokens"
                )
            if len(toks) == 0:
                raise ValueError(f"prompt {i} ({prompts[i]!r}) tokenizes to nothing; remove it")
        ids, mask = left_pad([toks[-P:] for toks in encoded], self.pad_token_id, width=P)
        return ids.numpy(), mask.numpy()

    # --- per step ---------------------------------------------------------------------------

    def observe(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Observations of prompts ``idx``: fresh (n, P) int64 arrays."""
        return {"input_ids": self.prompt_ids[idx].copy(), "attention_mask": self.prompt_mask[idx].copy()}

    def check_actions(self, actions: Any, n: int) -> np.ndarray:
        """``actions`` as an (n, L) int64 array, or a ``TypeError``/``ValueError`` that says why not."""
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        arr = np.asarray(actions)
        L, V = self.settings.max_new_tokens, self.vocab_size
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(
                f"actions must be integer token ids, got dtype {arr.dtype}; convert with np.asarray(a, dtype=np.int64)"
            )
        expected = (L,) if n == 1 and arr.ndim == 1 else (n, L)
        if arr.shape != expected:
            raise ValueError(
                f"actions have shape {arr.shape}, expected {expected}: max_new_tokens={L} token ids per response; "
                "pad a short response after its EOS with any valid id (the pad token)"
            )
        if arr.size and (arr.min() < 0 or arr.max() >= V):
            raise ValueError(
                f"token ids must lie in [0, {V}) (the tokenizer's vocabulary); got {arr.min()}..{arr.max()}"
            )
        return arr.reshape(n, L).astype(np.int64, copy=False)

    @torch.no_grad()
    def score(self, idx: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
        """Score responses ``actions`` (n, L) to prompts ``idx``: rewards and per-row info arrays."""
        dev, s = self.device, self.settings
        prompt_ids = torch.as_tensor(self.prompt_ids[idx], device=dev)
        prompt_mask = torch.as_tensor(self.prompt_mask[idx], device=dev)
        response = torch.as_tensor(actions, device=dev)
        mask = response_mask(response, self.eos_token_id)

        ref_logprobs = self._trimmed(
            lambda p, pm, r, rm: response_logprobs(
                self.reference_model, p, pm, r, rm, s.temperature, self.pad_token_id
            ),
            prompt_ids,
            prompt_mask,
            response,
            mask,
        )
        if self.policy is None:  # no policy: it is taken to be the reference, so KL = 0
            logprobs = ref_logprobs
        else:
            if isinstance(self.policy, CausalLMPolicy):  # our wrapper of a plain causal LM: run it like the reference
                logprobs = self._trimmed(
                    lambda p, pm, r, rm: self.policy.response_logprobs(p, pm, r, rm, s.temperature),
                    prompt_ids,
                    prompt_mask,
                    response,
                    mask,
                )
            else:  # the agent's own policy sees the whole batch, laid out as the observation and action were
                logprobs = self.policy.response_logprobs(prompt_ids, prompt_mask, response, mask, s.temperature)
            if tuple(logprobs.shape) != tuple(mask.shape):
                raise ValueError(
                    f"the policy's response_logprobs returned shape {tuple(logprobs.shape)}, expected "
                    f"{tuple(mask.shape)} (one log-prob per response token; see textbandit.policy)"
                )
            # where, not *: a policy may put -inf after the EOS, and -inf * 0 is NaN
            logprobs = torch.where(mask.bool(), logprobs.to(dev, torch.float32), 0.0)
            _check_finite(logprobs, "the policy's response_logprobs", "log-probs")
        _check_finite(ref_logprobs, "the reference model", "log-probs")
        finished = ends_with_eos(response, self.eos_token_id)
        lengths = mask.sum(dim=1).tolist()
        texts = self.decode(actions, lengths)
        join_rows = lambda fn: lambda p, pm, r, rm: fn(*join(p, pm, r, rm, self.pad_token_id))  # noqa: E731
        batch = self._responses(
            idx,
            actions,
            lengths,
            texts,
            finished,
            lambda fn: self._trimmed(join_rows(fn), prompt_ids, prompt_mask, response, mask),
        )
        total, parts = self.rewards.score(batch)
        score = torch.as_tensor(total, dtype=torch.float32, device=dev)
        if s.missing_eos_penalty is not None:
            score = score - s.missing_eos_penalty * (~finished).float()

        r = rlhf_reward(score, logprobs, ref_logprobs, mask, s.kl_coef)
        out = {
            "reward": r.reward.double(),
            "score": score,
            "kl": r.kl,
            "token_kl": r.token_kl,
            "logprobs": logprobs,
            "ref_logprobs": ref_logprobs,
            "response_mask": mask,
            "token_rewards": r.token_rewards,
            "truncated_response": ~finished,
        }
        out = {k: v.cpu().numpy() for k, v in out.items()}
        for k in ("score", "kl", "token_kl", "logprobs", "ref_logprobs", "token_rewards"):
            out[k] = out[k].astype(np.float32)
        out["score_parts"] = parts.astype(np.float32)
        out["prompt"] = np.array([self.prompts[i] for i in idx], dtype=object)
        out["response"] = np.array(texts, dtype=object)
        if self.gold is not None:
            out["gold_score"] = self.gold(batch, allow_none=False).astype(np.float32)
        return out

    def _responses(self, idx, actions, lengths, texts: list[str], finished: torch.Tensor, forward) -> Responses:
        """The batch as the reward sources see it (:class:`textbandit.rewards.Responses`)."""
        conversational = self.prompt_set.conversational  # TRL passes completions as messages then
        return Responses(
            prompts=[self.prompt_set.prompts[i] for i in idx],
            completions=[[{"role": "assistant", "content": t}] for t in texts] if conversational else texts,
            completion_ids=[a[:n].tolist() for a, n in zip(actions, lengths)],
            ended_with_eos=[bool(f) for f in finished.cpu()],
            columns=self.prompt_set.columns(idx),
            forward=forward,
        )

    def _trimmed(self, forward, prompt_ids, prompt_mask, response, mask) -> torch.Tensor:
        """``forward(prompt_ids, prompt_mask, response, response_mask)`` of a frozen model, run on
        chunks of at most ``forward_batch_size`` rows of similar length, each cut to its own longest
        prompt (the left-padding columns that are padding in every row go) and longest response
        (likewise the right padding). Padding never changes a result (attention masks it out and
        position ids count real tokens only), so this only skips arithmetic on pad tokens. Returns
        the rows in their original order: (n,) or (n, L), 0 beyond each chunk's cut."""
        n, P = prompt_mask.shape
        prompt_len, response_len = prompt_mask.sum(dim=1), mask.sum(dim=1)
        order = torch.argsort(prompt_len + response_len, stable=True)
        out = None
        for rows in order.split(self.forward_batch_size or n):
            p, r = int(prompt_len[rows].max()), max(int(response_len[rows].max()), 1)
            part = forward(prompt_ids[rows, P - p :], prompt_mask[rows, P - p :], response[rows, :r], mask[rows, :r])
            if out is None:
                out = part.new_zeros((n, mask.shape[1]) if part.dim() == 2 else (n,))
            if part.dim() == 2:
                out[rows, :r] = part
            else:
                out[rows] = part
        return out

    def decode(self, actions: np.ndarray, lengths: list[int]) -> list[str]:
        """Response texts: the first ``lengths[i]`` tokens of each (up to the EOS), special tokens skipped."""
        rows = [a[:n].tolist() for a, n in zip(actions, lengths)]
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True)


class EnvAttributes:
    """What both environments expose of their scorer, as public attributes: agents read these and
    never reach into ``env.scorer``."""

    scorer: BatchScorer

    @property
    def kl_coef(self) -> float:
        """The KL coefficient; settable (an adaptive KL controller updates it between steps)."""
        return self.scorer.settings.kl_coef

    @kl_coef.setter
    def kl_coef(self, value: float) -> None:
        if not (is_finite_number(value) and value >= 0):
            raise ValueError(f"kl_coef={value!r}; it must be a finite number >= 0 (0 disables the KL penalty)")
        self.scorer.settings.kl_coef = float(value)

    @property
    def tokenizer(self):
        """The tokenizer that turns prompts into observations and responses into text."""
        return self.scorer.tokenizer

    @property
    def prompts(self) -> list[str]:
        """The prompt texts episodes draw from (``reset(options=...)`` indexes into them)."""
        return self.scorer.prompts

    @property
    def device(self) -> torch.device:
        """Where the env's models run (and where a policy's inputs arrive)."""
        return self.scorer.device

    @property
    def temperature(self) -> float:
        """The sampling temperature the log-probs are computed at: sample at it too."""
        return self.scorer.settings.temperature

    @property
    def max_prompt_len(self) -> int:
        """P: prompts are left-padded to this many tokens."""
        return self.scorer.settings.max_prompt_len

    @property
    def max_new_tokens(self) -> int:
        """L: a response's length, the action's size."""
        return self.scorer.settings.max_new_tokens

    @property
    def reward_model(self):
        """The reward model that scores responses (``None`` when only reward functions do)."""
        return self.scorer.reward_model

    @property
    def reward_fns(self) -> list:
        """The reward functions that score responses beside (or instead of) the reward model."""
        return self.scorer.reward_fns

    @property
    def reward_names(self) -> list[str]:
        """The names of the reward sources, in the order of ``info["score_parts"]`` and ``reward_weights``."""
        return self.scorer.rewards.names

    @property
    def reward_weights(self) -> list[float]:
        """The weight of each reward source in the score."""
        return self.scorer.rewards.weights

    @property
    def reference_model(self):
        """The reference (SFT) model of the KL penalty."""
        return self.scorer.reference_model

    @property
    def policy(self):
        """The attached policy (``None``: the KL is 0)."""
        return self.scorer.policy

    @property
    def gold_fn(self):
        """The task's hidden judge of the env's prompts (``None`` when there is none); evaluation only."""
        return self.scorer.gold_fn

    def set_policy(self, policy) -> None:
        """Attach (or with ``None`` detach) the policy whose KL to the reference is penalised."""
        self.scorer.set_policy(policy)


def build_scorer(
    task: str | Task | None = "default",
    split: str = "train",
    reward_model=None,
    reference_model=None,
    tokenizer=None,
    prompts=None,
    reward_fns=None,
    reward_weights=None,
    policy=None,
    kl_coef: float | None = None,
    max_prompt_len: int | None = None,
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
    missing_eos_penalty: float | None = None,
    prompt_truncation: str = "error",
    gold_fn=None,
    device: str = "cpu",
    torch_dtype=None,
    forward_batch_size: int | str | None = "auto",
) -> BatchScorer:
    """The scorer of ``TextBanditEnv``'s arguments: what is not given comes from the task.

    Reward functions given without a reward model replace the task's reward model; given with one,
    they score beside it.
    """
    task = load_task(task)
    given = {
        "reward_model": reward_model,
        "reference_model": reference_model,
        "tokenizer": tokenizer,
        "prompts": prompts,
    }
    fns_only = reward_model is None and bool(_as_list(reward_fns))
    if task is None:
        settings = dict(GENERIC_SETTINGS)
    else:
        settings = task.settings()
        if prompts is None:  # the task's own prompts: its gold judge can judge the responses
            given["prompts"] = task.prompt_source(split)
            gold_fn = gold_fn if gold_fn is not None else task.gold_fn
        for name in ("reward_model", "reference_model", "tokenizer"):
            if given[name] is None and not (name == "reward_model" and fns_only):
                given[name] = getattr(task, name)
    missing = [name for name, value in given.items() if value is None and not (name == "reward_model" and fns_only)]
    if missing:
        where = "with task=None" if task is None else f"the task {task.name!r} has no {', '.join(missing)}:"
        alternative = " (or reward_fns)" if missing == ["reward_model"] else ""
        raise ValueError(
            f"{where} pass {', '.join(missing)}{alternative} too" + (" (or use task='default')" if task is None else "")
        )
    given_settings = {"kl_coef": kl_coef, "max_prompt_len": max_prompt_len, "max_new_tokens": max_new_tokens}
    settings.update({k: v for k, v in given_settings.items() if v is not None})
    return BatchScorer(
        **given,
        reward_fns=reward_fns,
        reward_weights=reward_weights,
        policy=policy,
        settings=Settings(
            temperature=temperature,
            missing_eos_penalty=missing_eos_penalty,
            prompt_truncation=prompt_truncation,
            **settings,
        ),
        gold_fn=gold_fn,
        device=device,
        torch_dtype=torch_dtype,
        forward_batch_size=forward_batch_size,
    )
