"""How far above its SFT start can a policy get on the default task, and how far does the reward model lead?

Samples the SFT model ``n + 1`` times on the same held-out (test) customers' prompts as the
pipeline's evaluation, then measures the gold labeler's win rate (ties count half) over the first
sample of:

- an always-perfect policy (every response at the top gold score): the ceiling of the headline
  number, below 100% only where the SFT sample is already perfect;
- best-of-n by gold: the best of the other ``n`` samples as the gold labeler picks it (a perfect
  reward model used as a re-ranker, no training);
- best-of-n by the reward model: the same, picked by the reward model's score.

The gap between the last two is what the reward model costs; the gap between best-of-n by gold and
PPO's win rate is what the RL budget costs. Run from the repository root::

    python benchmarks/best_of_n.py                      # the shipped SFT and reward models
    python benchmarks/best_of_n.py --sft runs/quick/sft_small --reward-model runs/quick/reward_model
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch


def main(argv=None) -> dict:
    from transformers import AutoModelForCausalLM

    from agents.pipeline.evaluate import eval_indices
    from agents.pipeline.metrics import win_rate
    from agents.pipeline.samples import sample_and_score
    from textbandit.task import load_task
    from textbandit.vector_env import TextBanditVectorEnv

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sft", default=None, help="SFT model directory (default: the shipped one)")
    ap.add_argument("--reward-model", default=None, help="reward model directory (default: the shipped one)")
    ap.add_argument("--n", type=int, default=7, help="samples to pick the best of (default %(default)s)")
    ap.add_argument("--prompts", type=int, default=512, help="test prompts (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the prompt choice and samples (default %(default)s)")
    a = ap.parse_args(argv)
    if a.n < 1:
        raise SystemExit(f"--n={a.n}; pick the best of at least 1 sample")

    torch.manual_seed(a.seed)
    envs = TextBanditVectorEnv(
        num_envs=64,
        task="default",
        split="test",
        **({"reward_model": a.reward_model} if a.reward_model else {}),
        **({"reference_model": a.sft} if a.sft else {}),
    )
    sft = AutoModelForCausalLM.from_pretrained(a.sft or load_task("default").reference_model)
    n_prompts = len(envs.prompts)
    idx = eval_indices(n_prompts, a.prompts, a.seed)
    draws = [sample_and_score(envs, sft, idx, 1.0, seed=a.seed * 1000 + s) for s in range(a.n + 1)]
    base, others = draws[0].gold, draws[1:]
    gold = np.stack([d.gold for d in others])  # (n, prompts)
    rm = np.stack([d.score for d in others])
    by_gold = gold.max(axis=0)
    by_rm = gold[rm.argmax(axis=0), np.arange(len(idx))]  # the gold score of the RM's pick
    top = max(float(by_gold.max()), float(base.max()))
    result = {
        "sft_at_top_gold": float(np.mean(base == top)),
        "ceiling": win_rate([top] * len(base), base),
        "second_sample": win_rate(others[0].gold, base),
        "best_of_n_gold": win_rate(by_gold, base),
        "best_of_n_rm": win_rate(by_rm, base),
        "mean_gold": {
            "sft": float(base.mean()),
            "best_of_n_gold": float(by_gold.mean()),
            "best_of_n_rm": float(by_rm.mean()),
        },
    }
    print(
        f"# {platform.node()} {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"{len(idx)} test prompts, n={a.n}, seed {a.seed}"
    )
    print(f"SFT's sample already at the top gold score ({top:g}): {result['sft_at_top_gold']:.1%}")
    print("gold win rate over one SFT sample (ties count half):")
    print(f"  another SFT sample            {result['second_sample']:.1%}")
    print(
        f"  best of {a.n} by the reward model  {result['best_of_n_rm']:.1%}  (mean gold "
        f"{result['mean_gold']['best_of_n_rm']:.3f} vs SFT {result['mean_gold']['sft']:.3f})"
    )
    print(
        f"  best of {a.n} by gold            {result['best_of_n_gold']:.1%}  (mean gold "
        f"{result['mean_gold']['best_of_n_gold']:.3f})"
    )
    print(f"  always perfect (ceiling)      {result['ceiling']:.1%}")
    return result


if __name__ == "__main__":
    main()
