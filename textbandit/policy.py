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
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

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


def as_policy(policy, pad_token_id: int) -> Policy | None:
    """``policy`` as a :class:`Policy`: as is if it has ``response_logprobs``, wrapped if it is a
    causal LM module, ``None`` for ``None``. Anything else raises ``TypeError``."""
    if policy is None or isinstance(policy, Policy):
        return policy
    if isinstance(policy, torch.nn.Module):
        return CausalLMPolicy(policy, pad_token_id)
    raise TypeError(
        f"policy must be a Hugging Face causal LM or an object with a "
        f"response_logprobs(prompt_ids, prompt_mask, response_ids, response_mask, temperature) "
        f"method (see textbandit.policy), got {type(policy).__name__}"
    )


def vocab_size_of(obj) -> int | None:
    """The vocabulary size of a model or policy, where it says one (``config.vocab_size``)."""
    for candidate in (obj, getattr(obj, "model", None), getattr(obj, "policy", None)):
        config = getattr(candidate, "config", None)
        if config is not None and getattr(config, "vocab_size", None):
            return int(config.vocab_size)
    return None
