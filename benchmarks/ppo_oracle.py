"""What holds PPO back on the default task: the reward model, or the RL budget?

Trains PPO from a pipeline run's SFT model with the run's PPO settings against two rewards, and
every ``--every`` iterations measures the pipeline's headline number, the gold labeler's win rate
over the SFT model on held-out (test) customers' prompts (ties count half):

- ``reward model``: the run's reward model, as ``textbandit pipeline`` trains;
- ``gold (oracle)``: the task's hidden gold labeler itself as the reward (:func:`gold_reward`, a
  reward function in place of the reward model), rescaled so that on the SFT model's samples it has the reward
  model's mean and spread, so that the KL coefficient weighs the same. A perfect reward model.

If the oracle is also far from the paper's 70% after the pipeline's number of iterations, the
reward model is not the only limit: the number of RL samples is. Run after the pipeline::

    python benchmarks/ppo_oracle.py --run runs/quick --iterations 300 --every 30    # ~10 min on 2 cores

What it measured is in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def gold_reward(task, scale: float = 1.0, shift: float = 0.0):
    """The task's gold judge as a reward function (TRL's signature, as the env calls it), rescaled:
    ``scale * gold + shift``. The env passes it the responses as text and whether each ended with EOS."""

    def gold_oracle(prompts, completions, **kwargs):
        return [scale * g + shift for g in task.gold_fn(prompts, completions, **kwargs)]

    return gold_oracle


def run_ppo(
    label: str,
    reward: dict,
    run: Path,
    settings,
    eval_env,
    prompts,
    iterations: int,
    every: int,
    sft_gold: np.ndarray,
    seed: int,
    out: Path,
    value_model: str = "shared",
    kl_coef: float = 0.05,
    **overrides,
) -> list[dict]:
    from agents.pipeline.metrics import win_rate
    from agents.pipeline.run import ppo_config
    from agents.pipeline.samples import sample_and_score
    from agents.ppo.learner import train

    cfg = ppo_config(
        settings,
        str(run / "sft_small"),
        run / "reward_model",
        out,
        iterations,
        kl_coef,
        seed,
        value_model=value_model,
        device="cpu",
        progress=False,
        tensorboard=False,
        samples_every=0,
        task=str(run / "task"),
        **overrides,
    )
    rows = []

    def measure(iteration, stats, policy):
        if iteration % every and iteration != iterations:
            return
        s = sample_and_score(eval_env, policy.lm, prompts, eval_env.temperature, seed=seed)
        rows.append(
            {
                "reward": label,
                "iteration": iteration,
                "samples": iteration * settings.ppo_batch,
                "gold": float(s.gold.mean()),
                "kl_from_sft": float(s.kl.mean()),
                "win_rate_over_sft": win_rate(s.gold, sft_gold),
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    train(cfg, env_kwargs=reward, callback=measure)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/quick", help="a finished `textbandit pipeline` output folder")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--every", type=int, default=30)
    p.add_argument("--eval-prompts", type=int, default=512)
    p.add_argument("--rewards", nargs="+", choices=["rm", "gold"], default=["rm", "gold"])
    p.add_argument("--seed", type=int, default=0, help="PPO runs with seed + 1; the evaluation samples with seed")
    p.add_argument("--kl-coef", type=float, default=0.05, help="PPO's KL coefficient (the pipeline's default: 0.05)")
    p.add_argument(
        "--value-model",
        choices=["shared", "reward"],
        default="shared",
        help="PPO's value function: a head on the policy's trunk (the pipeline's), or the paper's separate "
        "value model initialised from the reward model",
    )
    p.add_argument("--lr", type=float, help="PPO's learning rate (default: the preset's)")
    p.add_argument("--json", help="write the rows here too")
    a = p.parse_args(argv)
    from transformers import AutoModelForCausalLM

    from agents.pipeline.config import PRESETS
    from agents.pipeline.samples import sample_and_score
    from textbandit.reward_model import RewardModel
    from textbandit.task import load_task
    from textbandit.vector_env import TextBanditVectorEnv

    run = Path(a.run)
    if not (run / "reward_model" / ".done").exists():
        raise SystemExit(f"{run} has no finished reward_model/: run `textbandit pipeline --out {run}` first")
    settings = PRESETS[json.loads((run / "pipeline_config.json").read_text())["preset"]]
    task = load_task(run / "task")
    sft = AutoModelForCausalLM.from_pretrained(str(run / "sft_small"))
    judge = task.replace(reward_model=str(run / "reward_model"), reference_model=str(run / "sft_small"))
    eval_env = TextBanditVectorEnv(num_envs=64, task=judge, split="test")
    prompts = np.arange(min(a.eval_prompts, len(eval_env.prompts)))
    base = sample_and_score(eval_env, sft, prompts, eval_env.temperature, seed=a.seed)
    # the oracle on the reward model's scale: same mean and spread over the SFT model's samples
    scale = float(base.score.std() / max(base.gold.std(), 1e-6))
    shift = float(base.score.mean() - scale * base.gold.mean())
    rewards = {  # env arguments: the reward model, or the oracle function instead of it
        "rm": ("reward model", {"reward_model": RewardModel.from_pretrained(str(run / "reward_model"))}),
        "gold": ("gold (oracle)", {"reward_model": None, "reward_fns": [gold_reward(task, scale, shift)]}),
    }
    print(
        f"SFT on {len(prompts)} test prompts: gold {base.gold.mean():.3f}, RM score {base.score.mean():.3f} "
        f"+- {base.score.std():.3f}; oracle = {scale:.3f} * gold + {shift:.3f}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in a.rewards:
            label, reward = rewards[key]
            rows += run_ppo(
                label,
                reward,
                run,
                settings,
                eval_env,
                prompts,
                a.iterations,
                a.every,
                base.gold,
                a.seed,
                Path(tmp) / key,
                a.value_model,
                a.kl_coef,
                **({"learning_rate": a.lr} if a.lr is not None else {}),
            )
    print(
        f"\nPPO from {run}/sft_small, {settings.ppo_batch} responses per iteration, value model "
        f"{a.value_model!r}, kl_coef {a.kl_coef:g}, lr {a.lr or settings.ppo_learning_rate:g}, seed {a.seed}; "
        f"SFT gold {base.gold.mean():.3f}"
    )
    print(f"{'reward':16}{'iteration':>10}{'samples':>9}{'gold':>8}{'KL':>7}{'win over SFT':>14}")
    for r in rows:
        print(
            f"{r['reward']:16}{r['iteration']:>10}{r['samples']:>9}{r['gold']:>8.3f}{r['kl_from_sft']:>7.2f}"
            f"{r['win_rate_over_sft']:>14.3f}"
        )
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
