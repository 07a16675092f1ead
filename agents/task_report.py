"""Print the default task's acceptance figures.

    python -m agents.task_report --base-small DIR --base-large DIR [--task DIR] [--n 40]

Prints the vocabulary and corpus sizes, the instruction kinds, the base models' validation
perplexity, the simulated labelers' measured agreement, and the mean gold score per kind of
demonstrations against base-model samples on validation prompts. The base models come
from ``python -m agents.pretrain``; a missing directory is reported and skipped.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from agents.common.lm import blocks, perplexity
from agents.sampling import sample_texts
from textbandit.task import instructions as I
from textbandit.task import language as L
from textbandit.task import load_task
from textbandit.task.build import LABELER_STREAM, calibration_pool
from textbandit.task.demonstrator import demonstrate
from textbandit.task.gold import gold_scores
from textbandit.task.labelers import measure_agreement


def _load(path):
    from transformers import AutoModelForCausalLM

    if path is None or not Path(path, "config.json").exists():
        return None
    return AutoModelForCausalLM.from_pretrained(str(path))


def report(
    task_dir=None, base_small=None, base_large=None, n_per_kind: int = 40, max_new_tokens: int = 24, seed: int = 0
) -> None:
    task = load_task(task_dir or "default")
    tok = task.load_tokenizer()
    corpus = task.corpus()
    n_tok = sum(len(x) for x in tok(corpus["train"][:2000], add_special_tokens=False).input_ids)
    print("== language and corpus")
    print(
        f"response vocabulary: {len(L.RESPONSE_VOCAB)} words in {len(L.CATEGORIES)} "
        f"categories; with instruction words {len(L.RESPONSE_VOCAB | set(L.INSTRUCTION_WORDS))}"
    )
    print(
        f"tokenizer: {len(tok)} tokens (pad={tok.pad_token!r} id {tok.pad_token_id}, "
        f"eos={tok.eos_token!r} id {tok.eos_token_id})"
    )
    print(
        f"corpus: {len(corpus['train'])} train texts (~{n_tok / 2000 * len(corpus['train']):,.0f}"
        f" tokens), {len(corpus['validation'])} validation texts"
    )
    print("\n== instruction kinds (prompts train/validation/test)")
    counts = {s: defaultdict(int) for s in ("train", "validation", "test")}
    for s in counts:
        for r in task.prompt_records(s):
            counts[s][r["kind"]] += 1
    undemo = task.config.undemonstrated_kinds
    for k in I.KINDS:
        flag = "  (no demonstrations)" if k in undemo else ""
        print(f"  {k:14s} {counts['train'][k]:5d} {counts['validation'][k]:5d} {counts['test'][k]:5d}{flag}")

    models = {"small": _load(base_small), "large": _load(base_large)}
    print("\n== base models (validation perplexity on the corpus)")
    val = blocks(corpus["validation"], tok, 64)
    for name, m in models.items():
        if m is None:
            print(f"  {name}: missing (python -m agents.pretrain --size {name} --out DIR)")
            continue
        n_params = sum(p.numel() for p in m.parameters())
        print(f"  {name}: {n_params / 1e6:.2f}M parameters, perplexity {perplexity(m, val):.2f}")

    rng = np.random.default_rng(seed)
    by_kind = defaultdict(list)
    for r in task.prompt_records("validation"):
        by_kind[r["kind"]].append(r)
    demos = defaultdict(list)
    for d in task.demonstrations("validation"):
        demos[d["kind"]].append(d)
    rows, pool = {}, []
    samples = {}
    chosen = [r for k in I.KINDS for r in by_kind[k][:n_per_kind]]
    prompts = [r["prompt"] for r in chosen]
    for name, m in models.items():
        if m is not None:
            samples[name] = sample_texts(m, tok, prompts, max_new_tokens, seed=seed)
    print(
        f"\n== mean gold score per kind ({n_per_kind} validation prompts per kind; "
        f"base samples at T=1, {max_new_tokens} tokens)"
    )
    print(f"  {'kind':14s} {'demos':>6s} {'careful':>8s} " + " ".join(f"{'base-' + n:>11s}" for n in samples))
    careful = [demonstrate(I.Instruction(r["kind"], r["params"]), rng) for r in chosen]
    g_careful = gold_scores(prompts, careful)
    g_base = {n: gold_scores(prompts, t, e) for n, (t, e) in samples.items()}
    for k in I.KINDS:
        idx = [i for i, r in enumerate(chosen) if r["kind"] == k]
        dk = demos[k][:n_per_kind]
        g_demo = gold_scores([d["prompt"] for d in dk], [d["response"] for d in dk])
        demo_s = f"{np.mean(g_demo):6.3f}" if g_demo else f"{'-':>6s}"
        rows[k] = [np.mean([g_careful[i] for i in idx])] + [np.mean([g_base[n][i] for i in idx]) for n in g_base]
        print(f"  {k:14s} {demo_s} {rows[k][0]:8.3f} " + " ".join(f"{v:11.3f}" for v in rows[k][1:]))
    all_demo = gold_scores(
        [d["prompt"] for d in task.demonstrations("validation")],
        [d["response"] for d in task.demonstrations("validation")],
    )
    print(
        f"  {'all':14s} {np.mean(all_demo):6.3f} {np.mean(g_careful):8.3f} "
        + " ".join(f"{np.mean(v):11.3f}" for v in g_base.values())
    )
    print(
        "  (demos: the shipped demonstrations, sloppy ones included; careful: the "
        "demonstrator's careful answer, also for kinds it ships none of)"
    )
    if samples:
        for name, (t, e) in samples.items():
            print(f"  base-{name} samples end with EOS: {np.mean(e):.0%}; e.g. {t[0]!r}")

    print("\n== simulated labelers")
    pool = task.labelers()
    print(
        f"  {len(pool.noises)} labelers, noise {min(pool.noises):.3f}..{max(pool.noises):.3f}"
        f" (target agreement {task.config.labeler_agreement})"
    )
    cal = calibration_pool(
        task.prompt_records("train"), corpus["train"], np.random.default_rng([task.config.seed, LABELER_STREAM])
    )
    print(f"  measured agreement on the calibration pool (K=4): {measure_agreement(pool, cal, rng, rounds=5):.3f}")
    if g_base:
        mixed = [[g_careful[i]] + [g_base[n][i] for n in g_base] for i in range(len(chosen))]
        print(
            f"  measured agreement on (careful, base samples) lists: "
            f"{measure_agreement(pool, mixed, rng, rounds=5):.3f} "
            "(depends on the pool's gold spread; recalibrate with labelers.calibrate)"
        )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default=None, help="task directory (default: shipped)")
    ap.add_argument("--base-small", default=None)
    ap.add_argument("--base-large", default=None)
    ap.add_argument("--n", type=int, default=40, help="validation prompts per kind")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    report(a.task, a.base_small, a.base_large, a.n, seed=a.seed)


if __name__ == "__main__":
    main()
