"""A custom agent in under 100 lines: RLOO (REINFORCE Leave-One-Out, Ahmadian et al. 2024).

It uses the env through ``gym.make_vec`` (rewards and ``info["final_info"]``), plus two helpers:
``agents.sampling.sample`` to sample responses and ``textbandit.scoring.response_logprobs`` for
the log-probs it differentiates. The policy is a plain Hugging Face causal LM (the env wraps it
into the policy protocol), ``K`` responses per prompt are sampled, and each response's advantage
is its env reward (``score - kl_coef * KL``) minus the mean reward of the other ``K - 1``
responses to the same prompt. Example::

    envs = gym.make_vec("TextBandit-v0", num_envs=8 * 4, policy=lm)
    history = train_rloo(lm, envs, k=4, iterations=50)
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

import textbandit  # noqa: F401  (registers TextBandit-v0)
from agents.sampling import sample
from textbandit.scoring import response_logprobs


def rloo_advantages(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """(N*K,) rewards grouped as K consecutive samples per prompt -> leave-one-out advantages."""
    r = rewards.view(-1, k)
    baseline = (r.sum(dim=1, keepdim=True) - r) / (k - 1)
    return (r - baseline).view(-1)


def train_rloo(
    lm, envs, k: int = 4, iterations: int = 50, lr: float = 1e-4, temperature: float = 1.0, seed: int = 0, callback=None
) -> list[dict]:
    """Train ``lm`` in ``envs`` (a TextBandit vector env with ``lm`` attached as its policy).

    ``envs.num_envs`` must be a multiple of ``k``. Returns per-iteration mean score and KL.
    """
    n = envs.num_envs
    if k < 2 or n % k:
        raise ValueError(f"num_envs={n} must be a multiple of k={k} >= 2 (K samples per prompt)")
    tok = envs.unwrapped.tokenizer
    L = envs.single_action_space.shape[0]
    opt = torch.optim.AdamW(lm.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    lm.eval()  # dropout off throughout (N-details): the gradient is of the distribution we sampled
    history = []
    for it in range(iterations):
        # Draw n // k prompts, then repeat each k times (reset options pick prompts by index).
        _, info = envs.reset(seed=seed + it * n)
        idx = np.repeat(info["prompt_index"][: n // k], k)
        obs, _ = envs.reset(options={"prompt_indices": idx})
        prompt_ids = torch.as_tensor(obs["input_ids"])
        prompt_mask = torch.as_tensor(obs["attention_mask"])
        responses = sample(
            lm, prompt_ids, prompt_mask, L, tok.eos_token_id, tok.pad_token_id, temperature=temperature, generator=gen
        )
        _, rewards, _, _, step_info = envs.step(responses.numpy())
        fi = step_info["final_info"]
        adv = rloo_advantages(torch.as_tensor(rewards, dtype=torch.float32), k)
        mask = torch.as_tensor(fi["response_mask"])
        logp = response_logprobs(lm, prompt_ids, prompt_mask, responses, mask, temperature, tok.pad_token_id)
        # The KL term is in the reward already; REINFORCE on the whole response's log-prob.
        loss = -(adv * logp.sum(dim=1)).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        stats = {"iteration": it + 1, "score": float(fi["score"].mean()), "kl": float(fi["kl"].mean())}
        history.append(stats)
        if callback is not None:
            callback(stats)
    return history


if __name__ == "__main__":  # the default task: python -m agents.examples.rloo
    from transformers import AutoModelForCausalLM

    from textbandit.task import load_task

    model = AutoModelForCausalLM.from_pretrained(load_task("default").reference_model)
    vec = gym.make_vec("TextBandit-v0", num_envs=32, policy=model)
    train_rloo(model, vec, k=4, iterations=30, lr=3e-5, callback=print)
