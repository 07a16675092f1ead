"""Does PPO gain from more comparisons, or from comparisons of its own samples?

On a finished pipeline run, this adds ``--extra`` comparisons to the run's own: K samples per
training prompt (prompts ``--offset`` on) from ``--extra-from`` (the run's SFT model, or its PPO
policy, as InstructGPT's later comparisons came partly from its RLHF policies), ranked by the
run's labelers (their noise as calibrated on the run's comparisons, not recalibrated). It trains a
reward model as the pipeline does (from the SFT model, K-wise, the preset's learning rate, on the
run's comparisons plus the extra ones), runs PPO from the SFT model against it with the pipeline's
settings (the default KL coefficient, no curve), and judges that PPO policy as the report does:
the same test prompts and sampling seeds, gold win rate over SFT with a bootstrap interval.
The run's own PPO is judged beside it, so the two lines compare directly::

    python benchmarks/rm_data.py --run runs/quick --out /tmp/more --extra 2000          # ~4 min on 2 cores
    python benchmarks/rm_data.py --run runs/quick --out /tmp/own --extra 2000 --extra-from ppo
    python benchmarks/rm_data.py --run runs/quick --out /tmp/seed1 --rm-seed 1          # the spread of RM seeds

``--extra 0`` trains on the run's comparisons alone (with ``--rm-seed`` or ``--rm-epochs``);
``--add OTHER/extra.jsonl`` trains on another call's extra comparisons too;
``--reward-model DIR`` skips the reward model and runs PPO against DIR (``--ppo-seed``: PPO's
spread at a fixed reward model; ``--ppo-lr``, ``--iterations``: its learning rate and budget);
``--reward-model DIR DIR ...`` against the mean score of several (an ensemble of reward models;
PPO's critic starts from the first); ``--kl-coef`` sets PPO's KL coefficient (default: the run's
preset's, 0.2 for quick); ``--prompts``: how many test prompts are judged (the quick report's 512; 256
before 2026-12-04). What it measured is in benchmarks/README.md ("Eighth pass", "Tenth pass", "Thirteenth pass").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def extra_comparisons(task, policy, labelers, records, k, seed: int) -> list[dict]:
    """K samples of ``policy`` per prompt record, ranked by one of ``labelers`` (a LabelerPool) each."""
    from agents.pipeline.labeling import gold_lists, rank_records
    from agents.reward.collect import collect_comparisons

    unranked = lambda p, responses, ended: [0] * len(responses)  # noqa: E731  (ranked below)
    recs = collect_comparisons(
        policy,
        task.load_tokenizer(),
        records,
        tuple(k),
        unranked,
        max_new_tokens=task.max_new_tokens,
        max_prompt_len=task.max_prompt_len,
        seed=seed,
        device="cpu",
        progress=False,
    )
    # which labeler ranks each comparison, and its noise: the same draws whatever the samples' seed
    return rank_records(labelers, recs, gold_lists(task, recs), np.random.default_rng([0, 6]))


def gold_ties(task, records: list[dict]) -> float:
    """The share of a comparison file's pairs whose two responses have the same gold score."""
    from itertools import combinations

    from agents.pipeline.labeling import gold_lists

    tied = [abs(a - b) < 1e-9 for g in gold_lists(task, records) for a, b in combinations(g, 2)]
    return float(np.mean(tied))


def mean_score_model(paths: list[str]):
    """One reward model whose score is the mean of the reward models at ``paths``: a
    :class:`~textbandit.reward_model.RewardModel` built on the first (so PPO's critic starts from it),
    the others held beside it, not as submodules (a copy of it trains the first alone)."""
    from textbandit.reward_model import RewardModel

    class MeanScore(RewardModel):
        def __init__(self, models):
            super().__init__(models[0].trunk, models[0].head)
            self.others = tuple(models[1:])

        def score(self, input_ids, attention_mask, position_ids=None):
            own = super().score(input_ids, attention_mask, position_ids)
            return (own + sum(m.score(input_ids, attention_mask, position_ids) for m in self.others)) / (
                1 + len(self.others)
            )

    return MeanScore([RewardModel.from_pretrained(p).eval() for p in paths])


def judge(
    task, run: Path, policies: dict[str, Path], n_prompts: int = 512, seed: int = 0, split: str = "test"
) -> dict[str, dict]:
    """Each policy's gold win rate over the run's SFT model on the report's test prompts and seeds
    (``split="validation"``: on validation customers' prompts, to choose settings by)."""
    from transformers import AutoModelForCausalLM

    from agents.pipeline.evaluate import eval_indices, model_seed
    from agents.pipeline.metrics import win_interval, win_rate
    from agents.pipeline.samples import sample_and_score
    from textbandit.vector_env import TextBanditVectorEnv

    sft = str(run / "sft_small")
    env_task = task.replace(reward_model=str(run / "reward_model"), reference_model=sft)
    records = env_task.prompt_records(split)
    idx = eval_indices(len(records), n_prompts, seed)
    envs = TextBanditVectorEnv(num_envs=min(64, len(idx)), task=env_task, split=split, device="cpu")
    load = lambda p: AutoModelForCausalLM.from_pretrained(str(p)).eval()  # noqa: E731
    # SFT with the report's seed; each policy with its own (the key's), as the report draws every model
    base = sample_and_score(envs, load(sft), idx, 1.0, seed=model_seed(seed, "sft")).gold
    out = {}
    for name, path in policies.items():
        gold = sample_and_score(envs, load(path), idx, 1.0, seed=model_seed(seed, name)).gold
        out[name] = {"win": win_rate(gold, base), "ci95": win_interval(gold, base, seed), "gold": float(np.mean(gold))}
    return out


def main(argv=None) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from agents.pipeline.config import PRESETS
    from agents.pipeline.run import cycle, machine, ppo_config
    from agents.ppo.learner import save_policy, train
    from agents.reward.config import RewardConfig
    from agents.reward.trainer import train_reward_model
    from textbandit.data import load_comparisons, write_jsonl
    from textbandit.task import LabelerPool, load_task

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a finished quick pipeline run")
    ap.add_argument("--out", required=True, help="folder for the comparisons, reward model and PPO policy")
    ap.add_argument("--extra", type=int, default=0, help="comparisons added to the run's")
    ap.add_argument("--extra-from", choices=("sft", "ppo"), default="sft", help="the policy they are sampled from")
    ap.add_argument("--offset", type=int, default=0, help="the first training prompt they are sampled on")
    ap.add_argument("--sample-seed", type=int, default=1)
    ap.add_argument("--add", nargs="*", default=[], help="more comparisons to train on (a call's extra.jsonl)")
    ap.add_argument("--rm-epochs", type=int, default=None, help="default: the preset's")
    ap.add_argument("--rm-seed", type=int, default=0)
    ap.add_argument("--reward-model", nargs="+", default=None,
                    help="use this reward model instead of training one (several: their mean score)")  # fmt: skip
    ap.add_argument("--kl-coef", type=float, default=None, help="PPO's KL coefficient (default: the preset's)")
    ap.add_argument("--ppo-seed", type=int, default=0, help="0 is the pipeline's")
    ap.add_argument("--ppo-lr", type=float, default=None, help="PPO's learning rate (default: the preset's)")
    ap.add_argument("--iterations", type=int, default=None, help="PPO iterations (default: the preset's)")
    ap.add_argument("--prompts", type=int, default=512, help="test prompts judged (512: the quick report's)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    run, out = Path(a.run), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = PRESETS[json.loads((run / "pipeline_config.json").read_text())["preset"]]
    task, sft = load_task(run / "task"), str(run / "sft_small")
    print(f"# {machine()}; run {run}", flush=True)
    t0 = time.time()

    rm_dir = Path(a.reward_model[0]) if a.reward_model else out / "reward_model"
    if not a.reward_model:
        run_file = train_file = run / "comparisons" / "train.jsonl"
        added = [r for f in a.add for r in load_comparisons(f)]
        extra = []
        if a.extra:
            policy = AutoModelForCausalLM.from_pretrained(sft if a.extra_from == "sft" else str(run / "ppo" / "final"))
            labelers = LabelerPool(json.loads((run / "comparisons" / "labelers.json").read_text())["noises"])
            prompts = cycle(task.prompt_records("train")[a.offset :] or task.prompt_records("train"), a.extra)
            extra = extra_comparisons(task, policy, labelers, prompts, settings.k, a.sample_seed)
            print(f"{a.extra} comparisons from {a.extra_from}: gold ties {gold_ties(task, extra):.1%} "
                  f"({time.time() - t0:.0f} s)", flush=True)  # fmt: skip
            write_jsonl(out / "extra.jsonl", extra)
        if added or extra:  # the run's comparisons, then the added files', then the new ones
            train_file = out / "train.jsonl"
            write_jsonl(train_file, load_comparisons(run_file) + added + extra)
        rm_cfg = RewardConfig(
            model=sft,
            train=str(train_file),
            val=str(run / "comparisons" / "validation.jsonl"),
            normalize_with=str(task.demonstrations_file("train")),
            epochs=a.rm_epochs or settings.rm_epochs,
            lr=settings.rm_lr,
            max_prompt_len=task.max_prompt_len,
            max_response_len=task.max_new_tokens,
            seed=a.rm_seed,
            device="cpu",
            progress=False,
            out=str(rm_dir),
        )
        t = time.time()
        train_reward_model(rm_cfg)
        print(f"reward model: {time.time() - t:.0f} s", flush=True)
    rm_acc = json.loads((rm_dir / "summary.json").read_text())["val"]["accuracy"]
    env_kwargs = {}
    if a.reward_model and len(a.reward_model) > 1:
        from agents.reward.data import encode_comparisons, evaluate

        ensemble = mean_score_model(a.reward_model)
        val = encode_comparisons(load_comparisons(run / "comparisons" / "validation.jsonl"), task.load_tokenizer(),
                                 task.max_prompt_len, task.max_new_tokens)  # fmt: skip
        rm_acc = evaluate(ensemble, val, task.load_tokenizer().pad_token_id, "cpu")["accuracy"]
        env_kwargs = {"reward_model": ensemble}
        print(f"mean score of {len(a.reward_model)} reward models: held out {rm_acc:.1%}", flush=True)

    cfg = ppo_config(
        settings, sft, rm_dir, out / "ppo", a.iterations or settings.ppo_iterations["small"],
        settings.kl_coef if a.kl_coef is None else a.kl_coef, a.ppo_seed,
        device="cpu", progress=False, task=str(task.path), learning_rate=a.ppo_lr or settings.ppo_learning_rate,
    )  # fmt: skip
    t = time.time()
    result = train(cfg, task=task.replace(reward_model=str(rm_dir)), env_kwargs=env_kwargs)
    save_policy(result["policy"], out / "ppo" / "final")
    print(f"PPO: {time.time() - t:.0f} s", flush=True)

    # keyed "ppo" (the report's seed: the run's PPO scores as in its report) and "ppo2"
    got = judge(task, run, {"ppo": run / "ppo" / "final", "ppo2": out / "ppo" / "final"}, a.prompts)
    print("| policy | reward model held out | PPO over SFT | gold |\n|---|---|---|---|")
    run_acc = json.loads((run / "reward_model" / "summary.json").read_text())["val"]["accuracy"]
    for name, key, acc in (("the run's PPO", "ppo", run_acc), ("this PPO", "ppo2", rm_acc)):
        g = got[key]
        print(f"| {name} | {acc:.1%} | {g['win']:.1%} [{g['ci95'][0]:.1%}, {g['ci95'][1]:.1%}] | {g['gold']:.3f} |")
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
