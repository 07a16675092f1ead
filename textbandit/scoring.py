"""Log-probs and the RLHF reward of ``prompt ++ response`` batches, as pure functions.

:func:`response_logprobs` is how the environment and every learner score a response with a
causal LM (the layout of :mod:`textbandit.layout`, logits divided by the temperature), so they
agree to the last bit; :func:`rlhf_reward` is the one place that turns reward-model scores and
log-probs into the reward of InstructGPT's RL objective.

Shapes: ``N`` responses, prompts of ``P`` tokens, responses of ``L`` tokens, vocab ``V``.
"""

from __future__ import annotations

import functools
import inspect
from typing import NamedTuple

import torch

from textbandit.layout import join

LOGITS_CHUNK_ELEMENTS = 1 << 25
"""the most logits (32M, 128 MiB in float32) turned into log-probs at once: larger (N, T, V) batches
are cut into chunks of rows, so float32 logits never exist over the whole batch at once"""


def rows_per_chunk(n_rows: int, elements_per_row: int, budget: int | None = None) -> int:
    """How many rows of ``elements_per_row`` logits fit in ``budget`` (default
    :data:`LOGITS_CHUNK_ELEMENTS`; at least 1, at most ``n_rows``).

    >>> rows_per_chunk(16, 64 * 50257), rows_per_chunk(16, 24 * 727)
    (10, 16)
    """
    budget = LOGITS_CHUNK_ELEMENTS if budget is None else budget
    return max(1, min(n_rows, budget // max(elements_per_row, 1)))


def map_row_chunks(fn, *tensors: torch.Tensor, rows: int):
    """``fn(*tensors)`` computed on chunks of ``rows`` rows (dim 0) and put back together: ``fn``
    returns a tensor or a tuple of tensors (or ``None``s), concatenated along dim 0.

    One chunk (``rows`` >= the batch) is ``fn(*tensors)`` itself. Under autograd each chunk is
    checkpointed (``torch.utils.checkpoint``): its intermediates (float32 logits, softmax) are
    dropped after the forward and recomputed in the backward, so only one chunk's exist at a time.
    The results are those of the whole batch: every operation here is row by row.
    """
    n = tensors[0].shape[0]
    if rows >= n:
        return fn(*tensors)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    outs = []
    for i in range(0, n, rows):
        chunk = tuple(t[i : i + rows] for t in tensors)
        if grad:
            from torch.utils.checkpoint import checkpoint

            outs.append(checkpoint(fn, *chunk, use_reentrant=False))
        else:
            outs.append(fn(*chunk))
    if isinstance(outs[0], tuple):
        return tuple(None if parts[0] is None else torch.cat(parts) for parts in zip(*outs))
    return torch.cat(outs)


def _picked_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    # picked logit - logsumexp: the same number as log_softmax, without keeping an (N, T, V)
    # log-prob tensor for the backward pass (logsumexp saves only its (N, T) output)
    picked = torch.gather(logits, 2, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def gather_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / temperature) at ``tokens``: (N, T, V), (N, T) -> (N, T), in float32.

    Computed in chunks of rows (:data:`LOGITS_CHUNK_ELEMENTS`, :func:`map_row_chunks`), so the
    float32 copy of ``logits`` (bf16 on a GPU) never exists over the whole batch at once.
    """
    rows = rows_per_chunk(logits.shape[0], logits.shape[1] * logits.shape[2])
    return map_row_chunks(lambda x, t: _picked_logprobs(x, t, temperature), logits, tokens, rows=rows)


@functools.lru_cache(maxsize=None)
def _forward_params(forward_fn) -> frozenset:
    return frozenset(inspect.signature(forward_fn).parameters)


def response_logits(model, input_ids, attention_mask, pos_ids, prompt_len: int) -> torch.Tensor:
    """Logits that predict each response token: (N, L, V), from one forward pass.

    The logit at sequence position ``P + t - 1`` predicts response token ``t``.
    """
    extra = {}
    # DistributedDataParallel passes its keyword arguments on to the module it wraps
    inner = model.module if type(model).__name__ == "DistributedDataParallel" else model
    params = _forward_params(type(inner).forward)
    if "logits_to_keep" in params:  # unembed only the L + 1 last positions, not the prompt's
        extra["logits_to_keep"] = input_ids.shape[1] - prompt_len + 1
    if "use_cache" in params:  # a scoring pass needs no KV cache
        extra["use_cache"] = False
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos_ids, **extra)
    logits = out.logits
    return logits[:, logits.shape[1] - (input_ids.shape[1] - prompt_len + 1) : -1]


def response_logprobs(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    response_ids: torch.Tensor,
    resp_mask: torch.Tensor,
    temperature: float = 1.0,
    pad_token_id: int = 0,
) -> torch.Tensor:
    """Per-token log pi(a_t | prompt, a_<t) of a Hugging Face causal LM: (N, L), 0 where masked.

    Logits are divided by ``temperature`` first, as the sampler did (lm-human-preferences).
    """
    input_ids, attention_mask, pos = join(prompt_ids, prompt_mask, response_ids, resp_mask, pad_token_id)
    logits = response_logits(model, input_ids, attention_mask, pos, prompt_ids.shape[1])
    tokens = input_ids[:, prompt_ids.shape[1] :]
    return gather_logprobs(logits, tokens, temperature) * resp_mask


class Reward(NamedTuple):
    """What :func:`rlhf_reward` returns; token arrays are (N, L) and 0 where masked."""

    reward: torch.Tensor  # (N,) score - kl_coef * kl
    kl: torch.Tensor  # (N,) sum_t token_kl
    token_kl: torch.Tensor  # KL_t = log pi(a_t) - log pi_ref(a_t)
    token_rewards: torch.Tensor  # -kl_coef * KL_t, plus the score on the last response token


def rlhf_reward(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> Reward:
    """The reward of InstructGPT's RL objective for one sample: ``score - kl_coef * sum_t KL_t``.

    ``KL_t = log pi(a_t|.) - log pi_ref(a_t|.)`` on the response tokens (``mask``); the per-token
    rewards are what GAE consumes: ``-kl_coef * KL_t``, plus the score on the last response token
    (the EOS when there is one), as in lm-human-preferences.

    >>> r = rlhf_reward(torch.tensor([1.0]), torch.tensor([[-1.0, -2.0, 0.0]]),
    ...                 torch.tensor([[-1.5, -1.0, 0.0]]), torch.tensor([[1, 1, 0]]), kl_coef=0.1)
    >>> r.kl.tolist(), r.token_kl.tolist(), round(r.reward.item(), 6)
    ([-0.5], [[0.5, -1.0, 0.0]], 1.05)
    >>> [round(x, 6) for x in r.token_rewards[0, :2].tolist()]  # the score lands on the last token
    [-0.05, 1.1]
    """
    token_kl = (logprobs - ref_logprobs) * mask
    kl = token_kl.sum(dim=1)
    token_rewards = -kl_coef * token_kl
    last = mask.sum(dim=1) - 1  # the last response token (the EOS when there is one)
    token_rewards[torch.arange(len(last), device=last.device), last] += scores
    return Reward(scores - kl_coef * kl, kl, token_kl, token_rewards)
