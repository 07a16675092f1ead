"""Custom agents for ``TextBandit-v0``: what the environment asks of yours, and an example.

An agent trains in ``gym.make_vec("TextBandit-v0", num_envs=N, policy=...)`` like in any
Gymnasium vector env: ``reset`` gives left-padded prompts, ``step`` takes ``(N, L)`` int64 token
ids (the responses, each ending at its first EOS) and returns rewards ``score - kl_coef * KL``.
``info["final_info"]`` holds the per-token arrays (``logprobs``, ``ref_logprobs``, ``token_kl``,
``token_rewards``, ``response_mask``) for learners that need them (PPO's GAE does).

**The policy protocol** (``textbandit.policy``). To compute the KL penalty the environment asks
the policy for the log-probs of the responses it was given::

    def response_logprobs(self, prompt_ids, prompt_mask, response_ids, response_mask,
                          temperature: float) -> torch.Tensor:
        # (N, L) float: log pi(response_ids[:, t] | prompt, response_ids[:, :t]) computed from
        # logits / temperature, 0 where response_mask == 0; no grad needed, dropout off.

Inputs are ``(N, P)``/``(N, L)`` int64 tensors on the env's device, laid out as
docs/architecture.md says: prompts left-padded, positions ``cumsum(mask) - 1``, the logit at
``P + t - 1`` predicts response token ``t``. A plain Hugging Face causal LM needs no wrapper
(``policy=model``); ``agents.ppo.PolicyWithValueHead`` implements the method itself so that
the env's log-probs and its own update's are bit-identical. The policy's vocabulary must equal
the reference model's (the env refuses it otherwise).

Examples here:

- :mod:`agents.examples.rloo`: RLOO (REINFORCE with a leave-one-out baseline) in under 100
  lines. Rewards come from ``gym.make_vec`` alone; it samples with ``agents.sampling.sample``
  and differentiates ``textbandit.scoring.response_logprobs``.
- :mod:`agents.examples.toy`: ``KeywordReward``, a stand-in reward model for tests and demos.
"""
