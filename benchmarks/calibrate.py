"""Calibration of the default task: is there headroom, can a reward model learn it, can RL reach it?

Measured on a finished pipeline run (its task, SFT model and comparisons), per instruction kind
and overall, against the bars of the testbed issue:

- ``ties``: the share of held-out comparison pairs whose two responses have the same gold score
  (labelers can only guess there), the labelers' measured agreement, and per constraint the share
  of pairs whose two responses differ in meeting it (the only pairs that can teach the check);
- ``best_of_8``: the headroom above SFT. The best of 8 SFT samples, picked by gold, against one
  fresh SFT sample (gold win rate, ties half, with a bootstrap 95% interval);
- ``gold_rm``: a reward model trained with the run's recipe on the run's comparisons ranked by
  gold itself (no label noise; gold ties tied): its accuracy on the non-tied pairs of its own
  training comparisons and of the held-out ones (bars: >= 95% and >= 85%);
- ``rm_vs_gold``: the run's own reward model against gold on the held-out comparison pairs whose
  gold differs, split by what differs: explicit intent (the instructions' constraints) or not,
  sense or not. Which gold differences the reward model ranks right is what PPO can learn from it;
- ``ppo_gold``: PPO with the run's settings and budget against the gold labeler itself (a perfect
  reward model, rescaled to the run's reward model's mean and spread; its critic the shared head,
  as there is no reward model to start one from), its gold win rate over SFT on test prompts
  (bar: >= 70%); ``--ppo-kind K [K ...]`` trains it on the training prompts of those kinds alone,
  which tells a kind PPO cannot learn from one that the other kinds' updates pull down;
- ``sft_fit``: whether the SFT model fits its own training data. On training prompts that have a
  demonstration, the share of one SFT sample each that meets each of the instruction's constraints,
  beside the share of the demonstrations that do (a model that imitates them should come close);
- ``components``: what the run's PPO model changed, in the gold labeler's parts: the mean gold,
  ``intent`` (the score before the sense factor), ``sense``, ``explicit`` (the instructions'
  constraint credit), ``grammar`` and ``repetition`` (1 when nothing repeats, 0.5 when something
  does) of one sample per test prompt, SFT against PPO, and the run's
  PPO model's gold win rate over SFT on them, overall and per kind.

    python benchmarks/calibrate.py --run runs/quick                     # every section
    python benchmarks/calibrate.py --run runs/quick --only ties gold_rm  # a part

What it measured is in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

SECTIONS = ("ties", "sft_fit", "best_of_8", "gold_rm", "rm_vs_gold", "ppo_gold", "components")
PARTS = ("score", "intent", "sense", "explicit", "grammar", "repetition")
CONSTRAINTS = {  # the names of textbandit.task.instructions.constraints' entries, per kind
    "topic": ("on topic",),
    "include_word": ("on topic", "has a word of the category"),
    "avoid_word": ("on topic", "lacks the word"),
    "n_sentences": ("on topic", "n sentences"),
    "max_words": ("on topic", "at most n words"),
    "start_with": ("on topic", "first word of the category"),
    "end_with": ("on topic", "last word of the category"),
    "list_category": ("a list of the category", "k items"),
    "answer_fact": ("the answer", "no other value", "one sentence", "names the noun"),
}


def by_kind(task, prompts) -> list[str]:
    kinds = {r["prompt"]: r["kind"] for split in ("train", "validation", "test") for r in task.prompt_records(split)}
    return [kinds[p] for p in prompts]


def win_table(a: np.ndarray, b: np.ndarray, kinds: list[str], seed: int) -> dict:
    """Gold win rate of ``a`` over ``b`` (paired, per prompt) with its interval, overall and per kind."""
    from agents.pipeline.metrics import win_interval, win_rate

    out = {"all": {"win_rate": win_rate(a, b), "ci95": list(win_interval(a, b, seed)), "n": len(a)}}
    for kind in sorted(set(kinds)):
        i = [j for j, k in enumerate(kinds) if k == kind]
        out[kind] = {"win_rate": win_rate(a[i], b[i]), "ci95": list(win_interval(a[i], b[i], seed)), "n": len(i)}
    return out


def ties(run: Path, task, pool, seed: int) -> dict:
    """Gold ties among held-out comparison pairs and the labelers' agreement, per kind."""
    from agents.pipeline.labeling import gold_lists
    from textbandit.data import load_comparisons
    from textbandit.task.labelers import measure_agreement

    records = load_comparisons(run / "comparisons" / "validation.jsonl")
    golds = gold_lists(task, records)
    kinds = by_kind(task, [r["prompt"] for r in records])
    out = {}
    for kind in ["all", *sorted(set(kinds))]:
        g = [x for x, k in zip(golds, kinds) if kind in ("all", k)]
        pairs = [(a, b) for lst in g for a, b in combinations(lst, 2)]
        agreement = measure_agreement(pool, g, np.random.default_rng([seed, 79]), rounds=5)
        out[kind] = {"pairs": len(pairs), "ties": sum(a == b for a, b in pairs) / len(pairs), "agreement": agreement}
    for kind, share in differing_pairs(records, kinds).items():
        out[kind]["differ"] = share
    return out


def met(details: dict, kind: str) -> list[bool]:
    """Which of the kind's constraints a response meets, from its ``gold_details`` (an empty
    response, which gold_details gives no constraints, meets none)."""
    return details["constraints"] or [False] * len(CONSTRAINTS[kind])


def differing_pairs(records: list[dict], kinds: list[str]) -> dict[str, dict[str, float]]:
    """Per kind and constraint: the share of comparison pairs whose two responses differ in
    meeting it (only such pairs can teach a reward model the check)."""
    from textbandit.task.gold import gold_details

    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for r, kind in zip(records, kinds):
        ends = r.get("ended_with_eos") or [True] * len(r["responses"])
        rows = [met(gold_details(r["prompt"], text, bool(eos)), kind) for text, eos in zip(r["responses"], ends)]
        for a, b in combinations(rows, 2):
            for name, x, y in zip(CONSTRAINTS[kind], a, b):
                counts[kind][name][0] += x != y
                counts[kind][name][1] += 1
    return {k: {name: n / total for name, (n, total) in row.items()} for k, row in counts.items()}


def sft_fit(task, sft, per_kind: int, seed: int) -> dict:
    """Per kind and constraint: the share of demonstrations and of SFT samples (same training
    prompts, one sample each) that meet it, and both mean gold scores."""
    from agents.sampling import sample_texts
    from textbandit.task import instructions as I
    from textbandit.task.gold import gold_details

    demos = defaultdict(list)
    for d in task.demonstrations("train"):
        demos[I.parse(d["prompt"]).kind].append(d)
    chosen = [(kind, d) for kind in sorted(demos) for d in demos[kind][:per_kind]]
    tok = task.load_tokenizer()
    texts, ended = sample_texts(sft, tok, [d["prompt"] for _, d in chosen], task.max_new_tokens, seed=seed)
    out = {}
    for kind in sorted(demos):
        rows = [(d, t, e) for (k, d), t, e in zip(chosen, texts, ended) if k == kind]
        demo = [gold_details(d["prompt"], d["response"]) for d, _, _ in rows]
        sample = [gold_details(d["prompt"], t, bool(e)) for d, t, e in rows]
        out[kind] = {
            "n": len(rows),
            "gold": {
                name: float(np.mean([g["score"] for g in gs]))
                for name, gs in (("demonstrations", demo), ("sft", sample))
            },
            "met": {
                name: {
                    "demonstrations": float(np.mean([met(g, kind)[j] for g in demo])),
                    "sft": float(np.mean([met(g, kind)[j] for g in sample])),
                }
                for j, name in enumerate(CONSTRAINTS[kind])
            },
        }
    return out


def best_of_8(envs, sft, idx, kinds, seed: int) -> dict:
    from agents.pipeline.evaluate import model_seed
    from agents.pipeline.samples import sample_and_score

    draws = [sample_and_score(envs, sft, idx, envs.temperature, seed=model_seed(seed, f"draw{i}")) for i in range(9)]
    best = np.stack([d.gold for d in draws[1:]]).max(axis=0)
    return win_table(best, draws[0].gold, kinds, seed)


def gold_rm(run: Path, task, preset, seed: int, epochs: int | None) -> dict:
    """A reward model trained on the run's comparisons ranked by gold: accuracy on non-tied pairs."""
    from rm_probes import relabel
    from transformers import AutoTokenizer

    from agents.reward.config import RewardConfig
    from agents.reward.data import encode_comparisons, evaluate
    from agents.reward.trainer import train_reward_model
    from textbandit.data import load_comparisons, write_jsonl
    from textbandit.reward_model import RewardModel

    work = Path(tempfile.mkdtemp())
    data = {}
    for split in ("train", "validation"):
        data[split] = relabel(load_comparisons(run / "comparisons" / f"{split}.jsonl"), "gold")
        write_jsonl(work / f"{split}.jsonl", data[split])
    cfg = RewardConfig(
        model=str(run / "sft_small"),
        train=str(work / "train.jsonl"),
        epochs=epochs or preset.rm_epochs,
        lr=preset.rm_lr,
        max_prompt_len=task.max_prompt_len,
        max_response_len=task.max_new_tokens,
        seed=seed,
        device="cpu",
        progress=False,
        tensorboard=False,
        out=str(work / "rm"),
    )
    train_reward_model(cfg)
    rm, tok = RewardModel.from_pretrained(cfg.out), AutoTokenizer.from_pretrained(cfg.out)
    out = {}
    for split, records in data.items():
        kinds = by_kind(task, [r["prompt"] for r in records])
        rows = {}
        for kind in ["all", *sorted(set(kinds))]:
            chosen = [r for r, k in zip(records, kinds) if kind in ("all", k)]
            m = evaluate(
                rm, encode_comparisons(chosen, tok, task.max_prompt_len, task.max_new_tokens), tok.pad_token_id, "cpu"
            )
            rows[kind] = {"accuracy": m["accuracy"], "pairs": m["pairs"]}
        out[split] = rows
    return out


def pair_difference(a: dict, b: dict) -> str:
    """What differs between two responses' ``gold_details``: ``"explicit, sense"``,
    ``"explicit, not sense"``, ``"not explicit, sense"`` or ``"not explicit, not sense"`` (then
    grammar, repetition, invented words or truncation)."""
    explicit = abs(a["explicit"] - b["explicit"]) > 1e-9
    sense = abs(a["sense"] - b["sense"]) > 1e-9
    return f"{'explicit' if explicit else 'not explicit'}, {'sense' if sense else 'not sense'}"


def rm_vs_gold(run: Path, task) -> dict:
    """The run's reward model on held-out pairs whose gold differs: how often it orders them as gold
    does, overall and by :func:`pair_difference`."""
    from transformers import AutoTokenizer

    from agents.reward.data import chunk_by_rows, encode_comparisons, score_comparisons
    from textbandit.data import load_comparisons
    from textbandit.reward_model import RewardModel
    from textbandit.task.gold import gold_details

    rm = RewardModel.from_pretrained(run / "reward_model").eval()
    tok = AutoTokenizer.from_pretrained(run / "reward_model")
    records = load_comparisons(run / "comparisons" / "validation.jsonl")
    # every record scored, whatever the labelers' ranking (encode_comparisons drops all-tied ones)
    untied = [dict(r, ranking=list(range(len(r["responses"])))) for r in records]
    comps = encode_comparisons(untied, tok, task.max_prompt_len, task.max_new_tokens)
    with torch.no_grad():  # one row of scores per record, each completion forwarded once
        groups = chunk_by_rows(comps, 512)
        scores = [row for g in groups for row in score_comparisons(rm, g, tok.pad_token_id, "cpu")[0].tolist()]
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r, rm_scores in zip(untied, scores):
        ends = r.get("ended_with_eos") or [True] * len(r["responses"])
        d = [gold_details(r["prompt"], text, bool(e)) for text, e in zip(r["responses"], ends)]
        for i, j in combinations(range(len(d)), 2):
            if d[i]["score"] == d[j]["score"]:
                continue
            right = (rm_scores[i] > rm_scores[j]) == (d[i]["score"] > d[j]["score"])
            for key in ("all", pair_difference(d[i], d[j])):
                counts[key][0] += right
                counts[key][1] += 1
    return {k: {"accuracy": n_right / n, "pairs": n} for k, (n_right, n) in sorted(counts.items())}


def ppo_gold(
    run: Path, task, preset, envs, sft, idx, kinds, seed: int, iterations: int | None, train_kinds=None, kl_coef=0.05
) -> dict:
    """PPO against the gold labeler itself, with the run's settings; its gold win rate over SFT.
    ``train_kinds``: PPO trains on those kinds' training prompts alone (judged on every test prompt);
    ``kl_coef``: PPO's KL coefficient (main passes the run's default)."""
    from ppo_oracle import gold_reward

    from agents.pipeline.evaluate import model_seed
    from agents.pipeline.run import ppo_config
    from agents.pipeline.samples import sample_and_score
    from agents.ppo.learner import train

    base = sample_and_score(envs, sft, idx, envs.temperature, seed=model_seed(seed, "sft"))
    scale = float(base.score.std() / max(base.gold.std(), 1e-6))  # the oracle on the reward model's scale
    shift = float(base.score.mean() - scale * base.gold.mean())
    oracle = {"reward_model": None, "reward_fns": [gold_reward(task, scale, shift)]}
    if train_kinds:
        records = task.prompt_records("train")
        missing = sorted(set(train_kinds) - {r["kind"] for r in records})
        if missing:
            raise SystemExit(f"--ppo-kind {' '.join(missing)}: the task has no training prompt of that kind")
        oracle["prompts"] = [r["prompt"] for r in records if r["kind"] in train_kinds]
    iterations = iterations or preset.ppo_iterations[preset.sizes[0]]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ppo_config(
            preset,
            str(run / "sft_small"),
            run / "reward_model",
            tmp,
            iterations,
            kl_coef,
            seed,
            device="cpu",
            progress=False,
            tensorboard=False,
            samples_every=0,
            task=str(run / "task"),
            value_model="shared",  # no reward model in the env to start a critic from (as ppo_oracle.py)
        )
        policy = train(cfg, env_kwargs=oracle)["policy"]
    ppo = sample_and_score(envs, policy.lm, idx, envs.temperature, seed=model_seed(seed, "ppo"))
    return {
        "trained_on": " ".join(train_kinds) if train_kinds else "all",
        "iterations": iterations,
        "kl_coef": kl_coef,
        "responses": iterations * preset.ppo_batch,
        "kl_from_sft": float(ppo.kl.mean()),
        "win_over_sft": win_table(ppo.gold, base.gold, kinds, seed),
    }


def components(run: Path, envs, sft, idx, kinds, seed: int) -> dict:
    """The mean of each gold part over one sample per prompt, for SFT and the run's PPO model, and
    the PPO model's gold win rate over SFT on these prompts, overall and per kind."""
    from transformers import AutoModelForCausalLM

    from agents.pipeline.evaluate import model_seed
    from agents.pipeline.samples import sample_and_score
    from textbandit.task.gold import gold_details

    out, gold = {}, {}
    for name, model in (("sft", sft), ("ppo", AutoModelForCausalLM.from_pretrained(str(run / "ppo" / "final")).eval())):
        s = sample_and_score(envs, model, idx, envs.temperature, seed=model_seed(seed, name))
        parts = [gold_details(p, r, bool(e)) for p, r, e in zip(s.prompts, s.responses, s.ended_with_eos)]
        out[name] = {k: float(np.mean([d[k] for d in parts])) for k in PARTS}
        gold[name] = s.gold
    out["ppo_over_sft"] = win_table(gold["ppo"], gold["sft"], kinds, seed)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/quick", help="a finished `textbandit pipeline` output folder")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="the sections to measure")
    p.add_argument("--prompts", type=int, default=512, help="test prompts of best_of_8 and ppo_gold")
    p.add_argument("--fit-prompts", type=int, default=120, help="training prompts per kind of sft_fit")
    p.add_argument("--rm-epochs", type=int, default=None, help="epochs of the gold-label reward model (the run's)")
    p.add_argument("--iterations", type=int, default=None, help="PPO iterations (default: the run's preset's)")
    p.add_argument("--ppo-kind", nargs="+", default=None, help="ppo_gold trains on these kinds' prompts alone")
    p.add_argument("--kl-coef", type=float, default=None, help="ppo_gold's KL coefficient (default: the run's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here too")
    a = p.parse_args(argv)
    from transformers import AutoModelForCausalLM

    from agents.pipeline.config import PRESETS
    from agents.pipeline.run import machine
    from textbandit.task import LabelerPool, load_task
    from textbandit.vector_env import TextBanditVectorEnv

    run = Path(a.run)
    if not (run / "reward_model" / ".done").exists():
        raise SystemExit(f"{run} has no finished reward_model/: run `textbandit pipeline --out {run}` first")
    run_cfg = json.loads((run / "pipeline_config.json").read_text())
    preset = PRESETS[run_cfg["preset"]]
    task = load_task(run / "task")
    labelers = run / "comparisons" / "labelers.json"
    pool = LabelerPool(json.loads(labelers.read_text())["noises"]) if labelers.exists() else task.labelers()
    sft = AutoModelForCausalLM.from_pretrained(str(run / "sft_small")).eval()
    judge = task.replace(reward_model=str(run / "reward_model"), reference_model=str(run / "sft_small"))
    envs = TextBanditVectorEnv(num_envs=64, task=judge, split="test")
    idx = np.arange(min(a.prompts, len(envs.prompts)))
    kinds = by_kind(task, [envs.prompts[i] for i in idx])
    torch.manual_seed(a.seed)
    results: dict = {"run": str(run), "machine": machine()}
    if "ties" in a.only:
        results["ties"] = ties(run, task, pool, a.seed)
    if "sft_fit" in a.only:
        results["sft_fit"] = sft_fit(task, sft, a.fit_prompts, a.seed)
    if "best_of_8" in a.only:
        results["best_of_8"] = best_of_8(envs, sft, idx, kinds, a.seed)
    if "gold_rm" in a.only:
        results["gold_rm"] = gold_rm(run, task, preset, a.seed, a.rm_epochs)
    if "rm_vs_gold" in a.only:
        results["rm_vs_gold"] = rm_vs_gold(run, task)
    if "ppo_gold" in a.only:
        kl = run_cfg["kl_coef"] if a.kl_coef is None else a.kl_coef
        results["ppo_gold"] = ppo_gold(run, task, preset, envs, sft, idx, kinds, a.seed, a.iterations, a.ppo_kind, kl)
    if "components" in a.only:
        results["components"] = components(run, envs, sft, idx, kinds, a.seed)
    report(results)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return results


def report(r: dict) -> None:
    print(f"# calibration of {r['run']} ({r['machine']})")
    wins = [r["ppo_gold"]["win_over_sft"]] if "ppo_gold" in r else []
    wins += [r["components"]["ppo_over_sft"]] if "components" in r else []
    kinds = sorted({k for part in ("ties", "best_of_8") if part in r for k in r[part]}.union(*wins) - {"all"})
    table = defaultdict(dict)
    for kind in ["all", *kinds]:
        if "ties" in r and kind in r["ties"]:
            table[kind]["ties"] = f"{r['ties'][kind]['ties']:.1%}"
            table[kind]["agreement"] = f"{r['ties'][kind]['agreement']:.1%}"
        if "best_of_8" in r and kind in r["best_of_8"]:
            w = r["best_of_8"][kind]
            table[kind]["best of 8 by gold"] = f"{w['win_rate']:.1%} [{w['ci95'][0]:.0%}, {w['ci95'][1]:.0%}]"
        if "gold_rm" in r:
            for split, name in (("train", "gold RM train"), ("validation", "gold RM held out")):
                row = r["gold_rm"][split].get(kind)
                table[kind][name] = f"{row['accuracy']:.1%}" if row and row["pairs"] else "-"
        for part, name in (("ppo_gold", "PPO vs gold over SFT"), ("components", "run's PPO over SFT")):
            w = r.get(part, {}).get("win_over_sft" if part == "ppo_gold" else "ppo_over_sft", {}).get(kind)
            if w:
                table[kind][name] = f"{w['win_rate']:.1%} [{w['ci95'][0]:.0%}, {w['ci95'][1]:.0%}]"
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    if columns:
        print("| kind | " + " | ".join(columns) + " |\n|" + "---|" * (len(columns) + 1))
        for kind, row in table.items():
            print(f"| {kind} | " + " | ".join(row.get(c, "-") for c in columns) + " |")
    if "ppo_gold" in r:
        p = r["ppo_gold"]
        print(
            f"PPO against gold: {p['iterations']} iterations ({p['responses']} responses) at kl_coef "
            f"{p['kl_coef']:g} on "
            f"{'every kind' if p['trained_on'] == 'all' else p['trained_on'] + ' prompts alone'}, KL from SFT "
            f"{p['kl_from_sft']:.2f} nats"
        )
    if "rm_vs_gold" in r:
        print("| held-out pairs whose gold differs in | the run's RM orders them as gold | pairs |\n|---|---|---|")
        for name, row in r["rm_vs_gold"].items():
            print(f"| {name} | {row['accuracy']:.1%} | {row['pairs']} |")
    if "ties" in r:
        print("| kind | constraint | held-out pairs that differ in it |\n|---|---|---|")
        for kind, row in r["ties"].items():
            for name, share in row.get("differ", {}).items():
                print(f"| {kind} | {name} | {share:.0%} |")
    if "sft_fit" in r:
        print("| kind | constraint | demonstrations meet it | SFT samples meet it |\n|---|---|---|---|")
        for kind, row in r["sft_fit"].items():
            for name, m in row["met"].items():
                print(f"| {kind} | {name} | {m['demonstrations']:.0%} | {m['sft']:.0%} |")
            g = row["gold"]
            print(f"| {kind} | mean gold ({row['n']} prompts) | {g['demonstrations']:.3f} | {g['sft']:.3f} |")
    if "components" in r:
        print("| model | " + " | ".join(PARTS) + " |\n|" + "---|" * (len(PARTS) + 1))
        for name, row in ((n, r["components"][n]) for n in ("sft", "ppo")):
            print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in PARTS) + " |")
    print("bars: ties <= 20% and agreement 72.6% +- 1.5; gold RM train >= 95%, held out >= 85%; PPO vs gold >= 70%")


if __name__ == "__main__":
    main()
