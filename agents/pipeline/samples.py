"""Sample every model on the same held-out prompts and score the samples through the env.

Evaluation goes through ``TextBanditVectorEnv`` like any agent would: the env gives the reward
model's score, the KL to the SFT model and the gold labeler's score of each response.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from agents.sampling import sample


@dataclass
class Samples:
    """One model's responses to the evaluation prompts, with what the env said of them."""

    prompts: list[str]
    responses: list[str]
    tokens: np.ndarray  # (n, L) int64 response token ids
    ended_with_eos: np.ndarray  # (n,) bool
    score: np.ndarray  # (n,) reward-model score
    kl: np.ndarray  # (n,) sum over tokens of log pi - log pi_sft
    gold: np.ndarray  # (n,) gold labeler score

    def summary(self) -> dict:
        return {
            "gold": float(self.gold.mean()),
            "rm_score": float(self.score.mean()),
            "kl_from_sft": float(self.kl.mean()),
            "eos_rate": float(self.ended_with_eos.mean()),
            "mean_length": float(np.mean([len(r.split()) for r in self.responses])),
        }


@torch.no_grad()
def sample_and_score(
    envs,
    model,
    prompt_indices: np.ndarray,
    temperature: float,
    top_p: float = 1.0,
    seed: int = 0,
) -> Samples:
    """Sample ``model`` on the env's prompts ``prompt_indices`` and score through ``envs``.

    ``envs`` is a ``TextBanditVectorEnv`` whose policy is set to ``model`` here (so its KL is
    the model's KL to the env's reference); it is scored in chunks of ``envs.num_envs``.
    """
    env = envs.unwrapped
    env.set_policy(model)
    model.eval()
    generator = torch.Generator(device=env.device).manual_seed(seed)
    n, B = len(prompt_indices), envs.num_envs
    chunks: dict[str, list] = {k: [] for k in ("response", "prompt", "score", "kl", "gold_score", "truncated_response")}
    tokens = []
    for start in range(0, n, B):
        idx = prompt_indices[start : start + B]
        real = len(idx)
        idx = np.concatenate([idx, np.repeat(idx[-1:], B - real)])  # pad the last chunk
        obs, _ = envs.reset(options={"prompt_indices": idx})
        response = (
            sample(
                model,
                torch.as_tensor(obs["input_ids"], device=env.device),
                torch.as_tensor(obs["attention_mask"], device=env.device),
                env.max_new_tokens,
                env.tokenizer.eos_token_id,
                env.tokenizer.pad_token_id,
                temperature=temperature,
                top_p=top_p,
                generator=generator,
            )
            .cpu()
            .numpy()
        )
        _, _, _, _, info = envs.step(response)
        final = info["final_info"]
        for k in chunks:
            chunks[k].extend(list(final[k][:real]) if k in final else [np.nan] * real)
        tokens.append(response[:real])
    return Samples(
        prompts=[str(p) for p in chunks["prompt"]],
        responses=[str(r) for r in chunks["response"]],
        tokens=np.concatenate(tokens),
        ended_with_eos=~np.asarray(chunks["truncated_response"], dtype=bool),
        score=np.asarray(chunks["score"], dtype=np.float64),
        kl=np.asarray(chunks["kl"], dtype=np.float64),
        gold=np.asarray(chunks["gold_score"], dtype=np.float64),
    )
