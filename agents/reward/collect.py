"""Comparison collection: K completions per prompt from the SFT model, ranked by labelers.

As in InstructGPT, K is between 4 and 9 per prompt, all K completions of a prompt are shown to
one labeler at once, and the labeler ranks them. The ranking function is task-agnostic:

    rank_fn(prompt: str, responses: list[str], ended_with_eos: list[bool]) -> list[int]

returns ``ranking[i]``, the rank of ``responses[i]`` (0 = best, equal ranks = ties). Records are
written as K-wise comparison JSONL (docs/architecture.md), with ``ended_with_eos`` so that a
truncated sample is scored without an EOS, and with the prompt record's extra fields (such as
``customer``) kept.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

import torch

from agents.sampling import sample_texts
from textbandit.data import load_prompt_records, write_jsonl
from textbandit.layout import check_tokenizer
from textbandit.loading import load

RankFn = Callable[[str, list, list], Sequence[int]]


def _records(prompts) -> list[dict]:
    if isinstance(prompts, str) or hasattr(prompts, "__fspath__"):
        return load_prompt_records(prompts)
    return [p if isinstance(p, dict) else {"prompt": p} for p in prompts]


@torch.no_grad()
def collect_comparisons(
    model,
    tokenizer,
    prompts,
    k: int | tuple[int, int],
    rank_fn: RankFn,
    out_path=None,
    *,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    max_prompt_len: int = 64,
    batch_size: int = 64,
    seed: int = 0,
    device="cpu",
    progress: bool = True,
) -> list[dict]:
    """Sample K completions per prompt, rank them with ``rank_fn`` and return (and write) the records.

    ``prompts``: strings, prompt records (dicts with ``prompt``) or a prompts JSONL path. ``k``: a fixed
    K, or ``(k_min, k_max)`` to draw K uniformly per prompt (the paper: 4 to 9). ``batch_size``
    counts completions sampled per forward pass.
    """
    check_tokenizer(tokenizer)
    k_min, k_max = (k, k) if isinstance(k, int) else tuple(k)
    if not 2 <= k_min <= k_max:
        raise ValueError(f"k={k}; use K >= 2, or (k_min, k_max) with 2 <= k_min <= k_max (the paper: (4, 9))")
    records = _records(prompts)
    rng = random.Random(seed)
    ks = [rng.randint(k_min, k_max) for _ in records]
    owner = [i for i, _ in enumerate(records) for _ in range(ks[i])]  # each row's record: K rows per prompt
    model.to(device)
    texts, ended = sample_texts(
        model,
        tokenizer,
        [records[i]["prompt"] for i in owner],
        max_new_tokens,
        max_prompt_len=max_prompt_len,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    samples: list[list] = [[] for _ in records]
    for i, text, end in zip(owner, texts, ended):
        samples[i].append((text, end))
    result = []
    for r, s in zip(records, samples):
        responses, ended = [t for t, _ in s], [e for _, e in s]
        ranking = [int(x) for x in rank_fn(r["prompt"], responses, ended)]
        if len(ranking) != len(responses):
            raise ValueError(f"rank_fn returned {len(ranking)} ranks for {len(responses)} responses")
        result.append({**r, "responses": responses, "ranking": ranking, "ended_with_eos": ended})
    if out_path is not None:
        write_jsonl(out_path, result)
    return result


def main(argv=None) -> str:
    """``python -m agents.reward.collect --model SFT --prompts P.jsonl --out C.jsonl [--task DIR]``: the default
    task's simulated labelers rank K in ``--k-min..--k-max`` samples per prompt (one random labeler per prompt).

    The labelers are the task's as configured: its ``labelers.json``, whose noise was calibrated when the task
    was built, on a fixed pool of careful, sloppy, corpus-text and cut-short responses; their agreement on these
    SFT samples can therefore differ from the task's ``labeler_agreement``. ``textbandit pipeline`` instead first
    rescales the labelers' noise on the gold scores of the SFT samples it is about to rank (keeping each
    labeler's relative noise; :func:`agents.pipeline.labeling.calibrated_pool`), so that agreement on those
    comparisons is the task's setting.

    ``--rank none`` writes the same records without a ``ranking`` (items for people to rank with
    ``textbandit label serve``); no task is loaded, so any prompts and any model work."""
    import argparse

    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agents.common.cli import parse_args
    from textbandit.task import load_task

    ap = argparse.ArgumentParser(
        prog="textbandit collect",
        description="Sample K completions per prompt and have the default task's simulated labelers rank them "
        "(K-wise comparisons JSONL), or with --rank none write them unranked for people to rank "
        "('textbandit label serve').",
        epilog="Ranks with the task's labelers as configured (their noise as calibrated when the task was built, "
        "in its labelers.json); 'textbandit pipeline' instead first recalibrates the labelers' noise on the "
        "gold scores of the SFT samples it collects, so that their agreement on those comparisons is the "
        "task's labeler_agreement.",
    )
    ap.add_argument("--model", required=True, help="SFT model directory or hub name (HF format)")
    ap.add_argument(
        "--tokenizer",
        default=None,
        help="the tokenizer (a folder or hub name), when it is not in the --model folder",
    )
    ap.add_argument(
        "--prompts",
        required=True,
        help="prompts: JSONL (e.g. the task's prompts_train.jsonl) or TRL's formats (conversational ones rendered "
        "with the tokenizer's chat template)",
    )
    ap.add_argument("--out", required=True, help="comparisons JSONL to write")
    ap.add_argument(
        "--task",
        default=None,
        help="task directory whose labelers rank (None: the shipped task; unused with --rank none)",
    )
    ap.add_argument(
        "--rank",
        choices=("task", "none"),
        default="task",
        help="'task': the task's simulated labelers rank; 'none': write unranked items (no "
        "'ranking' field) for 'textbandit label serve', for any prompts and any model, no task "
        "loaded (default %(default)s)",
    )
    ap.add_argument(
        "--k-min",
        type=int,
        default=4,
        help="fewest completions per prompt (default %(default)s); K is drawn uniformly in "
        "k-min..k-max per prompt (the paper: 4 to 9)",
    )
    ap.add_argument("--k-max", type=int, default=9, help="most completions per prompt (default %(default)s)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N prompts (0: all)")
    ap.add_argument(
        "--max-new-tokens", type=int, default=32, help="tokens sampled per completion at most (default %(default)s)"
    )
    ap.add_argument(
        "--max-prompt-len",
        type=int,
        default=32,
        help="prompts longer than this many tokens keep their last ones (default %(default)s)",
    )
    ap.add_argument(
        "--temperature", type=float, default=1.0, help="sampling temperature of the SFT model (default %(default)s)"
    )
    ap.add_argument(
        "--batch-size", type=int, default=128, help="completions sampled per forward pass (default %(default)s)"
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of K per prompt, the samples, and the labelers' draws (which one ranks each prompt, "
        "their noise) (default %(default)s)",
    )
    a = parse_args(ap, argv)
    if a.rank == "none":
        rank_fn = lambda p, r, e: [0] * len(r)  # a placeholder, dropped below: people rank these later
    else:
        task, rng = load_task(a.task or "default"), np.random.default_rng(a.seed)
        rank_fn = lambda p, r, e: task.rank(p, r, rng, ended_with_eos=e)
    tokenizer = load(AutoTokenizer.from_pretrained, a.tokenizer or a.model, "--tokenizer", needs=None)
    prompts = load_prompt_records(a.prompts, tokenizer)[: a.limit or None]
    model = load(AutoModelForCausalLM.from_pretrained, a.model, "--model")
    records = collect_comparisons(
        model,
        tokenizer,
        prompts,
        (a.k_min, a.k_max),
        rank_fn,
        None if a.rank == "none" else a.out,
        max_new_tokens=a.max_new_tokens,
        temperature=a.temperature,
        max_prompt_len=a.max_prompt_len,
        batch_size=a.batch_size,
        seed=a.seed,
    )
    if a.rank == "none":
        write_jsonl(a.out, ({k: v for k, v in r.items() if k != "ranking"} for r in records))
    print(a.out)
    return a.out


if __name__ == "__main__":
    main()
