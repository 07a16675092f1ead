"""Acceptance experiments of agents.ppo on the default task (CPU, minutes).

1. PPO (default KL coefficient) vs its SFT start, judged by the hidden gold labeler on prompts
   of held-out (test) customers: win rate (ties count half) and the mean KL from SFT.
2. Over-optimisation: proxy score (reward model) and gold score per iteration with
   ``kl_coef=0`` and with the default coefficient (PNG + JSON of both curves).
3. The alignment tax: pretraining-corpus loss before and after PPO and PPO-ptx.

The SFT and reward models come from ``--sft``/``--rm``, else the shipped defaults
(``textbandit/assets/default``), else they are built into ``--work`` with the pipeline's own
stage functions at its quick preset's settings (task, small base, SFT, comparisons, RM)::

    python benchmarks/ppo_acceptance.py --work runs/ppo_acceptance
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import textbandit  # noqa: F401
from agents.pipeline.metrics import win_rate
from agents.ppo import PPOConfig, PolicyWithValueHead, train
from agents.ppo.ptx import PretrainingBatches

MAX_PROMPT_LEN, MAX_NEW_TOKENS = 32, 24  # as the pipeline (the task's prompts have <= 23 tokens)


def prepare(work: Path, seed: int = 0) -> tuple[str, str]:
    """SFT and RM directories: built with the pipeline's stage functions (quick preset) if missing."""
    from agents.pipeline.config import PRESETS
    from agents.pipeline.run import Stages, _with_out
    from agents.pretrain import PretrainArgs, pretrain
    from agents.reward.collect import collect_comparisons
    from agents.reward.config import RewardConfig
    from agents.reward.trainer import train_reward_model
    from agents.sft.config import SFTConfig
    from agents.sft.trainer import train_sft
    from textbandit.task import load_default_task

    s, stage = PRESETS["quick"], Stages(work)
    task = load_default_task()
    base = stage("base_small", lambda d: pretrain(_with_out(PretrainArgs(size="small", steps=s["pretrain_steps"]["small"],
                                                                         seed=seed), d)))
    sft_cfg = SFTConfig(model=str(base), train=str(task.demonstrations_file("train")),
                        val=str(task.demonstrations_file("validation")), epochs=s["sft_epochs"], lr=3e-4, batch_size=32,
                        max_prompt_len=MAX_PROMPT_LEN, max_response_len=MAX_NEW_TOKENS, seed=seed, progress=False,
                        out="-")
    sft = stage("sft", lambda d: train_sft(_with_out(sft_cfg, d)))

    def collect(d: Path):
        from transformers import AutoModelForCausalLM

        model, tok = AutoModelForCausalLM.from_pretrained(str(sft)), task.tokenizer()
        rng = np.random.default_rng([seed, 5])
        rank = lambda p, responses, ended: task.rank(p, responses, rng, ended)  # noqa: E731
        for split, n in (("train", s["comparison_prompts"]), ("validation", s["validation_comparison_prompts"])):
            collect_comparisons(model, tok, task.prompts(split)[:n], tuple(s["k"]), rank, d / f"{split}.jsonl",
                                max_new_tokens=MAX_NEW_TOKENS, max_prompt_len=MAX_PROMPT_LEN, seed=seed, progress=False)

    comps = stage("comparisons", collect)
    rm_cfg = RewardConfig(model=str(sft), train=str(comps / "train.jsonl"), val=str(comps / "validation.jsonl"),
                          normalize_with=str(task.demonstrations_file("train")), epochs=s["rm_epochs"],
                          max_prompt_len=MAX_PROMPT_LEN, max_response_len=MAX_NEW_TOKENS, seed=seed, progress=False,
                          out="-")
    rm = stage("reward_model", lambda d: train_reward_model(_with_out(rm_cfg, d)))
    return str(sft), str(rm)


def env_kwargs(task, sft: str, rm: str, split: str) -> dict:
    return dict(task=None, reward_model=rm, reference_model=sft, tokenizer=str(task.tokenizer_path),
                prompts=str(task.prompts_file(split)), max_prompt_len=MAX_PROMPT_LEN,
                max_new_tokens=MAX_NEW_TOKENS, gold_fn=task.gold_scores)


@torch.no_grad()
def evaluate(policy, envs, n_prompts: int, seed: int) -> dict:
    """Responses of ``policy`` to the first ``n_prompts`` prompts of ``envs``: gold, score, KL per prompt."""
    base, n = envs.unwrapped, envs.num_envs
    tok = base.tokenizer
    gen = torch.Generator().manual_seed(seed)
    envs.unwrapped.set_policy(policy)
    out = {"gold": [], "score": [], "kl": []}
    for start in range(0, n_prompts, n):
        idx = np.arange(start, start + n) % len(base.core.prompts)
        obs, _ = envs.reset(options={"prompt_indices": idx})
        responses = policy.generate(torch.as_tensor(obs["input_ids"]), torch.as_tensor(obs["attention_mask"]),
                                    MAX_NEW_TOKENS, tok.eos_token_id, tok.pad_token_id, 1.0, generator=gen)
        fi = envs.step(responses.numpy())[4]["final_info"]
        for k, key in (("gold", "gold_score"), ("score", "score"), ("kl", "kl")):
            out[k] += fi[key].tolist()
    return {k: v[:n_prompts] for k, v in out.items()}


def corpus_loss(lm, ptx: PretrainingBatches, n: int = 256) -> float:
    rows = np.arange(min(n, len(ptx.docs)))
    with torch.no_grad():
        return float(np.mean([ptx.loss(lm, None, rows[i:i + 32]).item() for i in range(0, len(rows), 32)]))


def run(args) -> dict:
    from textbandit.task import load_default_task

    task = load_default_task()
    sft, rm = args.sft, args.rm
    if not (sft and rm):
        from textbandit import defaults

        if (defaults.ASSETS / "sft").exists() and (defaults.ASSETS / "reward_model").exists() and not args.build:
            sft, rm = defaults.reference_path(), defaults.reward_model_path()
        else:
            t = time.time()
            sft, rm = prepare(Path(args.work) / "models", args.seed)
            print(f"built SFT and RM in {time.time() - t:.0f}s: {sft}, {rm}")
    corpus = task.corpus()
    results: dict = {"sft": sft, "rm": rm, "runs": {}}
    common = dict(sft_model=sft, reward_model=rm, task=None, prompts=str(task.prompts_file("train")),
                  tokenizer=str(task.tokenizer_path), batch_size=args.batch, minibatch_size=args.batch // 4,
                  total_iterations=args.iterations, max_new_tokens=MAX_NEW_TOKENS, learning_rate=args.lr,
                  update_epochs=args.epochs, seed=args.seed, device="cpu", progress=False, samples_every=10)
    runs = {"ppo": dict(kl_coef=args.kl_coef), "ppo_kl0": dict(kl_coef=0.0),
            "ppo_ptx": dict(kl_coef=args.kl_coef, ptx_coef=args.ptx_coef)}
    runs = {k: v for k, v in runs.items() if k in args.runs}
    from transformers import AutoModelForCausalLM

    sft_lm = AutoModelForCausalLM.from_pretrained(sft).eval()
    tok = task.tokenizer()
    ptx_eval = PretrainingBatches(corpus["validation"], tok, 32, 64, "cpu")
    results["sft_corpus_loss"] = corpus_loss(sft_lm, ptx_eval)
    test_envs = gym.make_vec("TextBandit-v0", num_envs=args.eval_batch, **env_kwargs(task, sft, rm, "test"))
    sft_policy = PolicyWithValueHead.from_pretrained(sft_lm, pad_token_id=tok.pad_token_id)
    sft_eval = evaluate(sft_policy, test_envs, args.eval_prompts, args.seed)
    for name, kw in runs.items():
        t = time.time()
        cfg = PPOConfig(output_dir=str(Path(args.work) / name), **common, **kw)
        result = train(cfg, env_kwargs=env_kwargs(task, sft, rm, "train"),
                       ptx_texts=corpus["train"] if kw.get("ptx_coef") else None)
        policy = result["policy"].eval()
        ev = evaluate(policy, test_envs, args.eval_prompts, args.seed)
        h = result["history"]
        results["runs"][name] = {
            "seconds": time.time() - t,
            "win_rate_vs_sft": win_rate(ev["gold"], sft_eval["gold"]),
            "test_gold": float(np.mean(ev["gold"])), "test_score": float(np.mean(ev["score"])),
            "test_kl": float(np.mean(ev["kl"])),
            "corpus_loss": corpus_loss(policy.lm, ptx_eval),
            "curves": {k: [r[key] for r in h] for k, key in
                       (("score", "env/score"), ("gold", "eval/gold_score"), ("kl", "env/kl"))},
        }
        r = results["runs"][name]
        r["corpus_loss_rise"] = r["corpus_loss"] - results["sft_corpus_loss"]
        print(f"{name}: win vs SFT {r['win_rate_vs_sft']:.3f}, test gold {r['test_gold']:+.3f} "
              f"(SFT {np.mean(sft_eval['gold']):+.3f}), KL from SFT {r['test_kl']:.2f}, corpus loss rise "
              f"{r['corpus_loss_rise']:+.4f}, {r['seconds']:.0f}s", flush=True)
    results["sft_test_gold"] = float(np.mean(sft_eval["gold"]))
    results["sft_test_score"] = float(np.mean(sft_eval["score"]))
    return results


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for ax, name, title in ((axes[0], "ppo_kl0", "kl_coef = 0"), (axes[1], "ppo", "default kl_coef")):
        if name not in results["runs"]:
            continue
        c = results["runs"][name]["curves"]
        x = np.arange(1, len(c["score"]) + 1)
        ax.plot(x, c["score"], label="proxy score (reward model)")
        ax.plot(x, c["gold"], label="gold score (hidden labeler)")
        ax.set_title(title)
        ax.set_xlabel("PPO iteration")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "overoptimisation.png", dpi=100)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs/ppo_acceptance")
    p.add_argument("--sft")
    p.add_argument("--rm")
    p.add_argument("--build", action="store_true", help="build SFT and RM into --work even if defaults exist")
    p.add_argument("--runs", nargs="+", default=["ppo", "ppo_kl0", "ppo_ptx"])
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--kl-coef", type=float, default=0.05)
    p.add_argument("--ptx-coef", type=float, default=1.0)
    p.add_argument("--eval-prompts", type=int, default=256)
    p.add_argument("--eval-batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    results["args"] = vars(args)
    (out / "acceptance.json").write_text(json.dumps(results, indent=1))
    plot(results, out)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "curves"} for k, v in results["runs"].items()},
                     indent=1))
    return results


if __name__ == "__main__":
    main()
