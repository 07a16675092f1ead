"""The batched engine behind ``TextBanditEnv`` and ``TextBanditVectorEnv``.

``BanditCore`` holds the models, the tokenizer and the tokenized prompts, and scores a batch
of responses with batched forward passes (in chunks of ``forward_batch_size`` rows). The single
env uses it with N = 1 and the vector env with N = num_envs: the same code path, so both give the
same numbers up to the float rounding of different batch shapes (about 1e-7).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from gymnasium import spaces

from textbandit.data import load_prompts
from textbandit.loading import check_source, load
from textbandit.policy import CausalLMPolicy, as_policy, is_causal_lm, max_positions, vocab_size_of
from textbandit.scoring import ends_with_eos, join, response_logprobs, response_mask

GoldFn = Callable[[list, list, list], list]
"""``gold_fn(prompts, responses, ended_with_eos) -> scores``: a task's hidden judge, for evaluation."""


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
                is_finite_number(self.missing_eos_penalty) and self.missing_eos_penalty >= 0):
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
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token; set tokenizer.eos_token (responses end at EOS)")
    if pad is None or pad == eos:
        raise ValueError(
            f"the tokenizer's pad token id ({pad}) must exist and differ from its EOS id ({eos}), or padding "
            "could not be told from a response's end; add one: tokenizer.add_special_tokens("
            "{'pad_token': '<pad>'}) and model.resize_token_embeddings(len(tokenizer))"
        )
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


def _load_reward_model(model, device, dtype):
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        from textbandit.reward_model import RewardModel

        model = RewardModel.from_pretrained(check_source(model, "reward_model"), torch_dtype=dtype)
    if not callable(getattr(model, "score", None)):
        raise TypeError(
            "reward_model must be a textbandit.reward_model.RewardModel, a local path to one, or a module "
            f"with score(input_ids, attention_mask, position_ids) -> (N,) rewards; got {type(model).__name__}"
        )
    return model.to(device).eval() if isinstance(model, torch.nn.Module) else model


def _check_finite(values: torch.Tensor, source: str, what: str) -> None:
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        rows = torch.nonzero(bad.reshape(len(values), -1).any(dim=1)).flatten().tolist()
        raise ValueError(f"{source} returned non-finite {what} (NaN or inf) for rows {rows[:10]} of the batch; a "
                         "reward built on them would be meaningless (check the model's dtype and weights)")


def check_scores(scores, n: int, source: str) -> np.ndarray:
    """``scores`` as an (n,) float32 array of finite numbers, or a ``ValueError`` naming ``source``."""
    try:
        arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source} returned {type(scores).__name__} {str(scores)[:80]!r}, not {n} numbers") from e
    if arr.shape != (n,) or np.shape(scores) not in ((n,), (n, 1)):
        raise ValueError(f"{source} returned {np.size(scores)} scores for {n} responses; return one number each")
    if not np.isfinite(arr).all():
        raise ValueError(f"{source} returned non-finite scores (NaN or inf) at rows "
                         f"{np.flatnonzero(~np.isfinite(arr))[:10].tolist()}")
    return arr.astype(np.float32)


AUTO_CPU_FORWARD_BATCH = 16  # measured with benchmarks/env_throughput.py on 2 cores: 16 beat 8, 32 and 64


class BanditCore:
    """Models, tokenizer and tokenized prompts, plus batched scoring. See ``TextBanditEnv``."""

    def __init__(
        self,
        *,
        reward_model,
        reference_model,
        tokenizer,
        prompts,
        policy=None,
        settings: Settings,
        gold_fn: GoldFn | None = None,
        device: str | torch.device = "cpu",
        torch_dtype: torch.dtype | None = None,
        forward_batch_size: int | str | None = "auto",
    ):
        if not (forward_batch_size is None or forward_batch_size == "auto" or (
                isinstance(forward_batch_size, int) and not isinstance(forward_batch_size, bool) and forward_batch_size > 0)):
            raise ValueError(f"forward_batch_size={forward_batch_size!r}; use a positive int, None for whole batches, "
                             "or 'auto'")
        self.settings = settings
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   "cpu" if device == "auto" else device)
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
        self.reward_model = _load_reward_model(reward_model, self.device, torch_dtype)
        self.ref_vocab_size = vocab_size_of(self.reference_model)
        for what, model in (("reference model", self.reference_model), ("reward model", self.reward_model)):
            vocab = vocab_size_of(model)
            if vocab is not None and vocab < self.vocab_size:
                raise ValueError(
                    f"the {what}'s vocabulary ({vocab}) is smaller than the tokenizer's ({self.vocab_size}): token "
                    "ids past its embedding would index out of range; pass the tokenizer the model was trained with"
                )
            self._check_positions(what, model)
        self.gold_fn = gold_fn
        self.policy = None
        self.set_policy(policy)
        self.prompts = load_prompts(prompts)
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
        ids = np.full((len(prompts), P), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(prompts), P), dtype=np.int64)
        for i, toks in enumerate(encoded):
            if len(toks) > P:
                if self.settings.prompt_truncation == "error":
                    raise ValueError(
                        f"prompt {i} has {len(toks)} tokens, more than max_prompt_len={P}: {prompts[i][:80]!r}...; "
                        "raise max_prompt_len, drop long prompts, or pass prompt_truncation='left' to keep "
                        "each prompt's last max_prompt_len tokens"
                    )
                toks = toks[-P:]
            if len(toks) == 0:
                raise ValueError(f"prompt {i} ({prompts[i]!r}) tokenizes to nothing; remove it")
            ids[i, P - len(toks) :] = toks  # left padding: the response follows the prompt's end
            mask[i, P - len(toks) :] = 1
        return ids, mask

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
            raise ValueError(f"token ids must lie in [0, {V}) (the tokenizer's vocabulary); got {arr.min()}..{arr.max()}")
        return arr.reshape(n, L).astype(np.int64, copy=False)

    @torch.no_grad()
    def score(self, idx: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
        """Score responses ``actions`` (n, L) to prompts ``idx``: rewards and per-row info arrays."""
        dev, s = self.device, self.settings
        prompt_ids = torch.as_tensor(self.prompt_ids[idx], device=dev)
        prompt_mask = torch.as_tensor(self.prompt_mask[idx], device=dev)
        response = torch.as_tensor(actions, device=dev)
        mask = response_mask(response, self.eos_token_id)

        ref_logprobs = self._trimmed(lambda p, pm, r, rm: response_logprobs(
            self.reference_model, p, pm, r, rm, s.temperature, self.pad_token_id
        ), prompt_ids, prompt_mask, response, mask)
        if self.policy is None:  # no policy: it is taken to be the reference, so KL = 0
            logprobs = ref_logprobs
        else:
            if isinstance(self.policy, CausalLMPolicy):  # our wrapper of a plain causal LM: run it like the reference
                logprobs = self._trimmed(lambda p, pm, r, rm: self.policy.response_logprobs(p, pm, r, rm, s.temperature),
                                         prompt_ids, prompt_mask, response, mask)
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
        score = self._trimmed(lambda p, pm, r, rm: self.reward_model.score(*join(p, pm, r, rm, self.pad_token_id))
                              .float().reshape(-1), prompt_ids, prompt_mask, response, mask)
        _check_finite(score, "the reward model", "scores")
        finished = ends_with_eos(response, self.eos_token_id)
        if s.missing_eos_penalty is not None:
            score = score - s.missing_eos_penalty * (~finished).float()

        token_kl = (logprobs - ref_logprobs) * mask  # KL_t = log pi(a_t|.) - log pi_ref(a_t|.)
        kl = token_kl.sum(dim=1)
        token_rewards = -s.kl_coef * token_kl
        last = mask.sum(dim=1) - 1  # the last response token (the EOS when there is one)
        token_rewards[torch.arange(len(last), device=dev), last] += score
        out = {
            "reward": (score - s.kl_coef * kl).double(),
            "score": score,
            "kl": kl,
            "token_kl": token_kl,
            "logprobs": logprobs,
            "ref_logprobs": ref_logprobs,
            "response_mask": mask,
            "token_rewards": token_rewards,
            "truncated_response": ~finished,
        }
        out = {k: v.cpu().numpy() for k, v in out.items()}
        for k in ("score", "kl", "token_kl", "logprobs", "ref_logprobs", "token_rewards"):
            out[k] = out[k].astype(np.float32)

        out["prompt"] = np.array([self.prompts[i] for i in idx], dtype=object)
        out["response"] = np.array(self.decode(actions, out["response_mask"]), dtype=object)
        if self.gold_fn is not None:
            gold = self.gold_fn(list(out["prompt"]), list(out["response"]), [bool(f) for f in finished.cpu()])
            out["gold_score"] = check_scores(gold, len(idx), "gold_fn")
        return out

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
            part = forward(prompt_ids[rows, P - p:], prompt_mask[rows, P - p:], response[rows, :r], mask[rows, :r])
            if out is None:
                out = part.new_zeros((n, mask.shape[1]) if part.dim() == 2 else (n,))
            if part.dim() == 2:
                out[rows, :r] = part
            else:
                out[rows] = part
        return out

    def decode(self, actions: np.ndarray, mask: np.ndarray) -> list[str]:
        """Response texts: tokens before the first EOS, special tokens skipped."""
        rows = [a[: int(m.sum())].tolist() for a, m in zip(actions, mask)]
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True)


class CoreAccess:
    """What both environments expose of their ``BanditCore``: the KL coefficient, the tokenizer
    and the attached policy."""

    core: BanditCore

    @property
    def kl_coef(self) -> float:
        """The KL coefficient; settable (an adaptive KL controller updates it between steps)."""
        return self.core.settings.kl_coef

    @kl_coef.setter
    def kl_coef(self, value: float) -> None:
        if not (is_finite_number(value) and value >= 0):
            raise ValueError(f"kl_coef={value!r}; it must be a finite number >= 0 (0 disables the KL penalty)")
        self.core.settings.kl_coef = float(value)

    @property
    def tokenizer(self):
        """The tokenizer that turns prompts into observations and responses into text."""
        return self.core.tokenizer

    def set_policy(self, policy) -> None:
        """Attach (or with ``None`` detach) the policy whose KL to the reference is penalised."""
        self.core.set_policy(policy)
