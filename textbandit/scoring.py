"""Log-prob and reward scoring of ``prompt ++ response`` batches.

Every model in textbandit sees a left-padded prompt followed by a response that ends at its
first EOS (kept); tokens after it are padding. The pure functions here are the one place that
turns that layout into model inputs, so the environment, the reward model and the learners
agree on positions, masks and temperature to the last bit.

Shapes: ``N`` responses, prompts of ``P`` tokens, responses of ``L`` tokens, vocab ``V``.
"""

from __future__ import annotations

import functools
import inspect

import torch
import torch.nn.functional as F


def response_mask(response_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 for every response token up to and including the first EOS, 0 after it.

    >>> response_mask(torch.tensor([[5, 2, 7, 7], [5, 6, 6, 6]]), eos_token_id=2).tolist()
    [[1, 1, 0, 0], [1, 1, 1, 1]]
    """
    is_eos = (response_ids == eos_token_id).long()
    eos_before = torch.cumsum(is_eos, dim=1) - is_eos  # EOS tokens strictly before t
    return (eos_before == 0).long()


def ends_with_eos(response_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """(N,) bool: whether each response contains an EOS (False means truncated)."""
    return (response_ids == eos_token_id).any(dim=1)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding: ``cumsum(mask) - 1`` clamped at 0."""
    return (torch.cumsum(attention_mask, dim=1) - 1).clamp(min=0)


def join(
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    response_ids: torch.Tensor,
    resp_mask: torch.Tensor,
    pad_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask, position_ids)`` of ``prompt ++ response``, (N, P+L) each.

    Response tokens after the first EOS become ``pad_token_id`` and are masked out.
    """
    response_ids = torch.where(resp_mask.bool(), response_ids, pad_token_id)
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, resp_mask], dim=1).long()
    return input_ids, attention_mask, position_ids(attention_mask)


def gather_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / temperature) at ``tokens``: (N, T, V), (N, T) -> (N, T)."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    # picked logit - logsumexp: the same number as log_softmax, without keeping an (N, T, V)
    # log-prob tensor for the backward pass (logsumexp saves only its (N, T) output)
    picked = torch.gather(logits, 2, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


@functools.lru_cache(maxsize=None)
def _forward_params(forward_fn) -> frozenset:
    return frozenset(inspect.signature(forward_fn).parameters)


def response_logits(model, input_ids, attention_mask, pos_ids, prompt_len: int) -> torch.Tensor:
    """Logits that predict each response token: (N, L, V), from one forward pass.

    The logit at sequence position ``P + t - 1`` predicts response token ``t``.
    """
    extra = {}
    params = _forward_params(type(model).forward)
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


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)
