"""The policy protocol: what the environment asks of the agent's policy.

The environment computes the per-token KL penalty ``log pi(a_t|.) - log pi_ref(a_t|.)``, so it
needs the policy's log-probs of the response it was given. Any object with this method will do::

    class MyPolicy:
        def response_logprobs(self, prompt_ids, prompt_mask, response_ids, response_mask,
                              temperature: float) -> torch.Tensor:
            ...  # (N, L) float tensor: log pi(response_ids[:, t] | prompt, response_ids[:, :t]),
                 # with the logits divided by `temperature`; 0 where response_mask == 0

All inputs are ``(N, P)`` / ``(N, L)`` int64 tensors on the environment's device, laid out as
docs/architecture.md says (left-padded prompts; responses ending at their first EOS). A plain
Hugging Face causal LM (anything whose forward takes ``input_ids, attention_mask,
position_ids`` and returns ``.logits``) is accepted as is: :func:`as_policy` wraps it.
Anything else (a module without an LM head, a function, the policy's class) is refused with a
``TypeError`` when it is attached, not at the first step.
"""

from __future__ import annotations

import inspect
from typing import Protocol, runtime_checkable

import torch

from textbandit.reward_model import RewardModel
from textbandit.scoring import response_logprobs


@runtime_checkable
class Policy(Protocol):
    """Anything that gives per-token log-probs of a batch of responses (see module docstring)."""

    def response_logprobs(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        response_ids: torch.Tensor,
        response_mask: torch.Tensor,
        temperature: float,
    ) -> torch.Tensor: ...


class CausalLMPolicy:
    """A Hugging Face causal LM as a :class:`Policy`.

    The model is put in eval mode for scoring (dropout off, so the log-probs are the ones the
    sampler used) and put back in the mode it was in.
    """

    def __init__(self, model: torch.nn.Module, pad_token_id: int):
        self.model = model
        self.pad_token_id = pad_token_id

    @torch.no_grad()
    def response_logprobs(self, prompt_ids, prompt_mask, response_ids, response_mask, temperature):
        was_training = self.model.training
        self.model.eval()
        try:
            return response_logprobs(
                self.model, prompt_ids, prompt_mask, response_ids, response_mask, temperature, self.pad_token_id
            )
        finally:
            self.model.train(was_training)


def is_causal_lm(model) -> bool:
    """Whether ``model`` is a module that can be called as a causal LM: a transformers model with
    an LM head (``get_output_embeddings()`` is a module), or a module whose forward takes
    ``input_ids``, ``attention_mask`` and ``position_ids`` (or ``**kwargs``)."""
    if not isinstance(model, torch.nn.Module) or isinstance(model, RewardModel):
        return False  # a reward model takes the same inputs but returns scores, not logits
    if callable(getattr(model, "get_output_embeddings", None)):  # a transformers model: trust it
        return isinstance(model.get_output_embeddings(), torch.nn.Module)
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return {"input_ids", "attention_mask", "position_ids"} <= params.keys() or any(
        p.kind is p.VAR_KEYWORD for p in params.values()
    )


def as_policy(policy, pad_token_id: int) -> Policy | None:
    """``policy`` as a :class:`Policy`: as is if it has ``response_logprobs``, wrapped if it is a
    causal LM module (:func:`is_causal_lm`), ``None`` for ``None``. Anything else raises ``TypeError``."""
    if policy is None or (not isinstance(policy, type) and callable(getattr(policy, "response_logprobs", None))):
        return policy
    if is_causal_lm(policy):
        return CausalLMPolicy(policy, pad_token_id)
    what = type(policy).__name__
    if isinstance(policy, type):
        what = f"type (the class {policy.__name__}; pass an instance)"
    elif isinstance(policy, RewardModel):
        what += " (a reward model scores responses; the policy is the causal LM that writes them)"
    elif isinstance(policy, torch.nn.Module):
        what += (
            " (a module, but not a causal LM: no LM head, and its forward does not take input_ids, "
            "attention_mask, position_ids)"
        )
    raise TypeError(
        f"policy must be a Hugging Face causal LM (e.g. AutoModelForCausalLM) or an object with a "
        f"response_logprobs(prompt_ids, prompt_mask, response_ids, response_mask, temperature) "
        f"method (see textbandit.policy), got {what}"
    )


def vocab_size_of(obj) -> int | None:
    """The vocabulary size of a model or policy, where it says one (``config.vocab_size``)."""
    for candidate in (obj, getattr(obj, "model", None), getattr(obj, "policy", None)):
        config = getattr(candidate, "config", None)
        if config is not None and getattr(config, "vocab_size", None):
            return int(config.vocab_size)
    return None


def max_positions(model) -> int | None:
    """The most tokens a model's position embeddings take, where its config says (``n_positions``,
    ``max_position_embeddings``); None for rotary models with no stated limit or a policy without a config."""
    for candidate in (model, getattr(model, "model", None), getattr(model, "lm", None)):
        config = getattr(candidate, "config", None)
        for name in ("n_positions", "max_position_embeddings"):
            if isinstance(getattr(config, name, None), int):
                return getattr(config, name)
    return None
